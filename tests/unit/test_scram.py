"""SCRAM's server side against RFC 7677's worked example, and the credential Kafka's tools send."""

from __future__ import annotations

import base64

import pytest
from kafka_redis_gateway.gateway.security.scram import (
    ScramError,
    ScramExchange,
    credential_from_salted_password,
    parse_client_first,
    password_matches,
    salted_password,
)
from kafka_redis_gateway.gateway.storage.credentials import ScramCredential

SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")


def rfc_7677_credential() -> ScramCredential:
    salted = salted_password("SCRAM-SHA-256", "pencil", SALT, 4096)
    return credential_from_salted_password("SCRAM-SHA-256", salted, SALT, 4096)


def exchange() -> ScramExchange:
    return ScramExchange("SCRAM-SHA-256", parse_client_first(CLIENT_FIRST), rfc_7677_credential(),
                         server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")


def test_rfc_7677_example_exchange() -> None:
    scram = exchange()
    assert scram.server_first == ("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                  "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert scram.final(CLIENT_FINAL) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert scram.user == "user"


def test_a_wrong_proof_or_nonce_is_refused() -> None:
    with pytest.raises(ScramError, match="credentials"):
        exchange().final(CLIENT_FINAL.replace(b"p=dHz", b"p=dHy"))
    with pytest.raises(ScramError, match="nonce"):
        exchange().final(CLIENT_FINAL.replace(b"k0,", b"k1,"))
    with pytest.raises(ScramError):
        parse_client_first(b"p=tls-unique,,n=user,r=abc")  # channel binding


def test_plain_checks_a_password_against_the_scram_credential() -> None:
    assert password_matches("SCRAM-SHA-256", rfc_7677_credential(), "pencil")
    assert not password_matches("SCRAM-SHA-256", rfc_7677_credential(), "pencils")


def test_user_names_are_decoded_and_kept_in_kafka_text_form() -> None:
    assert parse_client_first(b"n,,n=a=2Cb=3Dc,r=x").user == "a,b=c"
    credential = rfc_7677_credential()
    assert ScramCredential.decode(credential.encode()) == credential
    assert credential.encode().startswith("salt=W22ZaJ0SNY7soEsUEjb6gQ==,stored_key=")
