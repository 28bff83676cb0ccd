"""The principal of a TLS client, as Kafka's default principal builder names it."""

from __future__ import annotations

from kafka_redis_gateway.gateway.security.tls import principal


def test_no_certificate_is_anonymous() -> None:
    assert principal(None) == "User:ANONYMOUS"
    assert principal({}) == "User:ANONYMOUS"


def test_the_subject_is_written_last_rdn_first_with_rfc_2253_keywords_and_escapes() -> None:
    certificate = {"subject": ((("countryName", "US"),), (("organizationName", "Acme, Inc."),),
                               (("organizationalUnitName", "ops"), ("commonName", "#bob ")))}
    assert principal(certificate) == "User:OU=ops+CN=\\#bob\\ ,O=Acme\\, Inc.,C=US"
