"""Logged tracebacks escape what clients can put in exception messages."""

from __future__ import annotations

import logging

import pytest
from kafka_redis_gateway.gateway.logs import RateLimitedLog, escaped_traceback

FORGED = "bad topic\n2026-12-02 10:00:00,000 ERROR forged line\x1b[2J"


def failing_with(message: str) -> BaseException:
    try:
        try:
            raise KeyError(message)
        except KeyError as inner:
            raise RuntimeError(f"handler failed: {message}") from inner
    except RuntimeError as error:
        return error


def test_a_logged_traceback_keeps_client_text_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    client_log = RateLimitedLog(logging.getLogger("test.logs"), interval=0)
    with caplog.at_level(logging.ERROR, "test.logs"):
        try:
            raise failing_with(FORGED)
        except RuntimeError:
            client_log.log(logging.ERROR, "handler", "api %d failed", 3, exc_info=True)
    text = caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is None
    assert "forged line" in text
    assert not any(line.startswith("2026-12-02") for line in text.splitlines())
    assert "\x1b" not in text
    assert "\\n2026-12-02" in text and "\\x1b[2J" in text


def test_the_chain_reads_as_python_prints_it() -> None:
    text = escaped_traceback(failing_with("plain"))
    cause, _, outer = text.partition("The above exception was the direct cause of the following exception:")
    assert "KeyError: 'plain'" in cause and "Traceback (most recent call last):" in cause
    assert "RuntimeError: handler failed: plain" in outer
    assert text.startswith("Traceback (most recent call last):")
