"""The TLS context a rediss:// URL asks for (storage/redis_tls.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from kafka_redis_gateway.gateway.storage.redis_tls import client_context, tls_failure
from redis import exceptions as redis_errors

from tests.tls_support import make_certificates


def test_no_context_without_rediss() -> None:
    assert client_context("redis://127.0.0.1:6379/0") is None


def test_the_url_settings_make_the_context(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    base = f"rediss://127.0.0.1:6380/0?ssl_ca_certs={certificates.ca}"
    checked = client_context(base)
    assert checked is not None
    assert checked.verify_mode == ssl.CERT_REQUIRED and checked.check_hostname
    assert [c["subject"] for c in checked.get_ca_certs()] == [((("commonName", "krg-test-ca"),),)]
    unchecked = client_context(f"{base}&ssl_check_hostname=false&ssl_certfile={certificates.client_cert}"
                               f"&ssl_keyfile={certificates.client_key}")
    assert unchecked is not None
    assert unchecked.verify_mode == ssl.CERT_REQUIRED and not unchecked.check_hostname


def test_a_file_that_does_not_load_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        client_context(f"rediss://127.0.0.1:6380/0?ssl_ca_certs={tmp_path / 'none.pem'}")


def test_the_tls_error_behind_a_connection_error_is_found() -> None:
    refused = ssl.SSLCertVerificationError("certificate verify failed")
    try:
        try:
            raise refused
        except OSError as exc:
            raise redis_errors.ConnectionError("cannot connect to Redis") from exc
    except redis_errors.ConnectionError as wrapped:
        assert tls_failure(wrapped) is refused
    assert tls_failure(redis_errors.ConnectionError("Connection refused")) is None
