"""The embedded server's data directory is closed to other users only when it is the gateway's own."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from kafka_redis_gateway.gateway.data_dir import make_private
from kafka_redis_gateway.gateway.embedded import EmbeddedRedis


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def made_open(path: Path, *children: str) -> Path:
    path.mkdir()
    for child in children:
        (path / child).mkdir() if child == "appendonlydir" else (path / child).write_text("")
    path.chmod(0o755)
    return path


def test_a_new_directory_is_private(tmp_path: Path) -> None:
    make_private(tmp_path / "a" / "data")
    assert mode(tmp_path / "a" / "data") == 0o700


@pytest.mark.parametrize("children", [(), ("appendonlydir", "redis-url"), ("gateway.lock",)])
def test_a_gateways_directory_made_before_is_closed(tmp_path: Path, children: tuple[str, ...]) -> None:
    data_dir = made_open(tmp_path / "data", *children)
    make_private(data_dir)
    assert mode(data_dir) == 0o700


def test_a_directory_holding_other_files_keeps_its_modes(tmp_path: Path) -> None:
    shared = made_open(tmp_path / "shared", "notes.txt")
    make_private(shared)  # e.g. --data-dir /tmp: closing it would lock others out
    assert mode(shared) == 0o755


def test_the_server_command_is_loopback_absolute_and_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    command = EmbeddedRedis(Path("relative")).command()
    option = dict(zip(command[2::2], command[3::2], strict=False))
    assert option["--bind"] == "127.0.0.1"
    # The server chdirs into --dir before it writes its pid file.
    assert option["--pidfile"] == str(tmp_path / "relative" / "valkey.pid")
    assert command[1] == str(tmp_path / "relative" / "valkey.conf")  # the password is in there
    assert not any("requirepass" in part for part in command)
