"""Logging what clients cause: escaped, and rate-limited per kind.

A client decides how often it sends a malformed request and what its group
IDs, client IDs, member IDs and topic names contain; neither may let it
flood the log or write control characters (forged lines, terminal escapes)
into it.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback


def printable(text: object) -> str:
    """``text`` for a log line: as is when printable, else escaped as ``repr`` does.

    Only non-printable text is escaped, so ordinary names read as they are;
    a newline, ESC or NUL becomes ``\\n``, ``\\x1b``, ``\\x00``.
    """
    string = str(text)
    return string if string.isprintable() else repr(string)[1:-1]


_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def escaped_traceback(error: BaseException) -> str:
    """The traceback logging would print, with each exception's message escaped.

    Stack lines come from the gateway's code; messages may quote client data
    (a topic name, a member ID), so a message with a newline cannot forge a
    log line.
    """
    blocks: list[str] = []
    current: BaseException | None = error
    seen: list[BaseException] = []
    while current is not None and all(current is not earlier for earlier in seen):
        seen.append(current)
        stack = "".join(traceback.format_tb(current.__traceback__))
        message = "".join(traceback.format_exception_only(type(current), current)).rstrip("\n")
        block = f"Traceback (most recent call last):\n{stack}{printable(message)}"
        if current.__cause__ is not None:
            blocks.append(_CAUSE + block)
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            blocks.append(_CONTEXT + block)
            current = current.__context__
        else:
            blocks.append(block)
            current = None
    # The innermost cause is printed first, as Python prints chains.
    return "".join(reversed(blocks)).removeprefix(_CAUSE).removeprefix(_CONTEXT)


class RateLimitedLog:
    """At most one line per kind per interval; the next line counts the ones dropped.

    Kinds are fixed strings of the gateway's code (never client data), so the
    table stays small.
    """

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        # kind -> [monotonic time the next line may be logged, lines dropped since]
        self._kinds: dict[str, list[float]] = {}

    def log(self, level: int, kind: str, message: str, *args: object,
            exc_info: bool = False) -> None:
        if not self._logger.isEnabledFor(level):
            return
        now = time.monotonic()
        state = self._kinds.get(kind)
        if state is not None and now < state[0]:
            state[1] += 1
            return
        dropped = int(state[1]) if state is not None else 0
        self._kinds[kind] = [now + self._interval, 0]
        if dropped:
            message += " (%d more like it since the last one logged)"
            args = (*args, dropped)
        error = sys.exc_info()[1] if exc_info else None
        if error is not None:
            message += "\n%s"
            args = (*args, escaped_traceback(error))
        self._logger.log(level, message, *args)

    def warning(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)
