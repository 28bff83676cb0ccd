"""TLS to Redis: the client context a ``rediss://`` URL asks for.

The settings are the URL's query parameters, under redis-py's names, so
redis-py's clients (pools, the cluster client) read the very URL that the
multiplexed connections (multiplex.py) and the cluster router
(redis_cluster.py) read here: ``ssl_ca_certs`` (the CAs Redis's certificate
must chain to; the system's when absent), ``ssl_certfile`` and
``ssl_keyfile`` (the gateway's certificate, for a Redis with
``tls-auth-clients yes``) and ``ssl_check_hostname`` (true unless set to
false: the certificate must name the host the URL, or a cluster's slot map,
gives). config.parse_redis_url has checked them.
"""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit

from ..config import redis_check_hostname, redis_tls_parameters


class RedisTlsFailed(Exception):
    """The TLS handshake with Redis failed: a setting to fix, not a Redis to wait for."""


@functools.cache
def client_context(url: str) -> ssl.SSLContext | None:
    """The TLS context for a rediss:// URL (built once per URL); None for other URLs.

    Raises OSError or ssl.SSLError when the files named do not load.
    """
    if urlsplit(url).scheme != "rediss":
        return None
    parameters = redis_tls_parameters(url)
    context = ssl.create_default_context(cafile=parameters.get("ssl_ca_certs"))
    context.check_hostname = redis_check_hostname(parameters)
    if "ssl_certfile" in parameters:
        context.load_cert_chain(parameters["ssl_certfile"], parameters.get("ssl_keyfile"))
    return context


def tls_failure(error: BaseException | None) -> ssl.SSLError | None:
    """The TLS error behind an error (its causes followed), if any."""
    seen = 0
    while error is not None and seen < 10:  # a cause chain is short; a cycle must not hang us
        if isinstance(error, ssl.SSLError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None
