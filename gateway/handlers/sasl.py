"""SaslHandshake (key 17), v0-v1; SaslAuthenticate (key 36), v0-v2.

On a SASL listener (docs/security.md) SaslHandshake picks one of
--sasl-enabled-mechanisms (UNSUPPORTED_SASL_MECHANISM and a closed
connection otherwise) and SaslAuthenticate carries the mechanism's tokens;
after a v0 handshake the tokens come as bare frames instead (connection.py).
A refused client gets SASL_AUTHENTICATION_FAILED and the connection closes.
On other listeners, or once authenticated, both answer ILLEGAL_SASL_STATE
and the connection goes on, as Kafka does (mid-exchange, an out-of-order
one is answered and the connection closed), except for a KIP-368 re-authentication when
--connections-max-reauth-ms is set (security/sasl.py); the session lifetime
sent is that setting, 0 (no limit) without it.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..logs import RateLimitedLog
from ..security.sasl import SASL_AUTHENTICATE, SASL_HANDSHAKE, SaslFailed, Session, State
from ._build import make, response_types

NO_SESSION_LIMIT = datetime.timedelta(0)
# Failed logins are what a password-guessing client causes: logged, but not
# a line each.
_failures = RateLimitedLog(logging.getLogger(__name__), 10.0)


async def handle_handshake(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    session = context.session
    enabled = context.config.sasl_enabled_mechanisms
    if session.may_reauthenticate(request.mechanism, context.api_version):
        session.reauthenticate()
        return make(types.SaslHandshakeResponse, error_code=ErrorCode.none, mechanisms=enabled)
    if session.state is not State.HANDSHAKE:
        _refuse_out_of_order(session)
        return make(types.SaslHandshakeResponse, error_code=ErrorCode.illegal_sasl_state,
                    mechanisms=enabled)
    if request.mechanism not in enabled:
        session.fail()
        return make(types.SaslHandshakeResponse, error_code=ErrorCode.unsupported_sasl_mechanism,
                    mechanisms=enabled)
    session.choose(request.mechanism, raw_tokens=context.api_version == 0)
    return make(types.SaslHandshakeResponse, error_code=ErrorCode.none, mechanisms=enabled)


async def handle_authenticate(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    session = context.session
    if session.state is not State.AUTHENTICATING or session.raw_tokens:
        _refuse_out_of_order(session)
        return make(types.SaslAuthenticateResponse, error_code=ErrorCode.illegal_sasl_state,
                    error_message=f"Unexpected SaslAuthenticate request: {session.state.value}",
                    auth_bytes=b"", session_lifetime=NO_SESSION_LIMIT)
    try:
        token = await session.authenticate(request.auth_bytes, context.credentials)
    except SaslFailed as exc:
        _failures.warning("sasl", "authentication of %s failed: %s", context.peer, exc)
        return make(types.SaslAuthenticateResponse, error_code=ErrorCode.sasl_authentication_failed,
                    error_message=str(exc), auth_bytes=b"", session_lifetime=NO_SESSION_LIMIT)
    # Told once the exchange is done (the last token); 0 means no limit.
    lifetime = datetime.timedelta(milliseconds=session.lifetime_ms)
    return make(types.SaslAuthenticateResponse, error_code=ErrorCode.none, error_message=None,
                auth_bytes=token, session_lifetime=lifetime)


def _refuse_out_of_order(session: Session) -> None:
    # Mid-exchange, Kafka's authenticator closes the connection on a request
    # out of order; once authenticated, its request handler only answers
    # ILLEGAL_SASL_STATE and goes on serving (as on other listeners).
    if session.listener.protocol.sasl and session.state is not State.AUTHENTICATED:
        session.close_after_answer = True


ROUTES = (
    Route(SASL_HANDSHAKE, 0, 1, handle_handshake, Access.PUBLIC),
    Route(SASL_AUTHENTICATE, 0, 2, handle_authenticate, Access.PUBLIC),
)
