"""compose/compose.yaml publishes ports on the host's loopback unless KRG_PUBLISH_HOST says otherwise.

The gateway has no authentication yet, so publishing on every interface
(Docker's default for "HOST_PORT:CONTAINER_PORT") would hand the data to the
network. Checked on the file's text, since no Docker engine runs here.
"""

from __future__ import annotations

import re
from pathlib import Path

COMPOSE = Path(__file__).resolve().parents[2] / "compose" / "compose.yaml"


def published_ports() -> list[str]:
    """The entries of every service's `ports:` list."""
    entries, in_ports = [], False
    for line in COMPOSE.read_text().splitlines():
        if re.fullmatch(r"\s+ports:", line):
            in_ports = True
        elif in_ports and (item := re.fullmatch(r"\s+- \"?([^\"]+)\"?", line)):
            entries.append(item[1])
        else:
            in_ports = False
    return entries


def test_every_published_port_is_on_loopback_by_default() -> None:
    ports = published_ports()
    assert len(ports) == 4  # the three gateways' and Kafka's
    for entry in ports:
        assert re.fullmatch(r"\$\{KRG_PUBLISH_HOST:-127\.0\.0\.1\}:\d+:\d+", entry), entry
