"""The command line: every bad flag or environment value is one line naming it, status 2;
the README's configuration table lists exactly the parser's flags."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_redis_gateway.gateway.cli import FLAGS, build_parser, parse_config
from kafka_redis_gateway.gateway.config import parse_redis_url

README = Path(__file__).resolve().parents[2] / "README.md"


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it (a bad value must stop it before it serves)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KRG_")}
    return subprocess.run([sys.executable, "-m", "kafka_redis_gateway.gateway", *args],
                          env={**environment, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--default-partitions", "zero"], {}, "--default-partitions"),
    (["--default-partitions", "0"], {}, "--default-partitions"),
    ([], {"KRG_DEFAULT_PARTITIONS": "abc"}, "KRG_DEFAULT_PARTITIONS"),
    (["--log-level", "verbose"], {}, "--log-level"),
    ([], {"KRG_LOG_LEVEL": "verbose"}, "KRG_LOG_LEVEL"),
    (["--redis-url", "127.0.0.1:35841"], {}, "--redis-url"),
    ([], {"KRG_REDIS_URL": "redis://127.0.0.1:99999/0"}, "KRG_REDIS_URL"),
    (["--listen", "localhost"], {}, "--listen"),
    (["--metrics-listen", "127.0.0.1:70000"], {}, "--metrics-listen"),
    (["--node-id", "-1"], {}, "--node-id"),
    (["--redis-timeout", "nan"], {}, "--redis-timeout"),
    (["--auto-create-topics", "maybe"], {}, "--auto-create-topics"),
    ([], {"KRG_ACKS_ALL_REPLICAS": "-2"}, "KRG_ACKS_ALL_REPLICAS"),
    (["--max-connections", "0"], {}, "--max-connections"),
    (["--workers", "0"], {}, "--workers"),
    (["--workers", "2", "--node-id", "1000"], {}, "--workers"),
])
def test_a_bad_value_is_one_line_naming_it_and_status_2(args: list[str], env: dict[str, str],
                                                         named: str) -> None:
    result = gateway(*args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_a_flag_wins_over_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRG_DEFAULT_PARTITIONS", "abc")  # not even read
    monkeypatch.setenv("KRG_NODE_ID", "7")
    config = parse_config(["--default-partitions", "3", "--redis-url", "redis://h:1/0"])
    assert (config.default_partitions, config.node_id, config.redis_url) == (3, 7, "redis://h:1/0")


def test_help_lists_the_subcommands() -> None:
    text = build_parser().format_help()
    for subcommand in ("inspect", "adopt", "bench"):
        assert f"kafka-redis-gateway {subcommand}" in text


def readme_table() -> dict[str, tuple[str, str, str]]:
    """The README's configuration table: flag -> (metavar, environment variable, default cell)."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `(--[a-z0-9-]+) ([^`]+)` \| `([A-Z0-9_]+)` \| ([^|]+) \|", line)
        if match:
            rows[match[1]] = (match[2], match[3], match[4].strip())
    return rows


def test_the_readme_table_lists_every_flag() -> None:
    table = readme_table()
    assert sorted(table) == sorted(flag.name for flag in FLAGS)
    for flag in FLAGS:
        metavar, variable, default = table[flag.name]
        assert (metavar, variable) == (flag.metavar, flag.variable), flag.name
        if flag.name == "--data-dir":
            continue  # the README shows it for $HOME, the code computes it
        if default.startswith("`"):
            assert default == f"`{flag.default}`", flag.name
        else:  # "off", "none", "embedded server": an optional setting
            assert not flag.default, flag.name


@pytest.mark.parametrize("subcommand", [["inspect"], ["adopt", "orders", "orders"]])
def test_subcommands_name_a_bad_redis_url_and_say_when_redis_is_unreachable(
        subcommand: list[str]) -> None:
    bad = gateway(*subcommand, "--redis-url", "127.0.0.1:35841")
    # argparse's usage block, then the error line (the subcommands' own parsers).
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert "--redis-url" in bad.stderr.splitlines()[-1]
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    unreachable = gateway(*subcommand, "--redis-url", "redis://127.0.0.1:1/0")
    assert unreachable.returncode == 1 and len(unreachable.stderr.splitlines()) == 1, unreachable.stderr
    assert "cannot reach Redis" in unreachable.stderr


@pytest.mark.parametrize(("args", "named"), [
    (["--listeners", "PLAINTEXT//127.0.0.1:1"], "--listeners"),
    (["--listeners", "A://127.0.0.1:1,A://127.0.0.1:2"], "--listeners"),
    (["--listener-security-protocol-map", "A:TLS"], "--listener-security-protocol-map"),
    (["--listen", "127.0.0.1:1", "--listeners", "PLAINTEXT://127.0.0.1:2"], "--listeners"),
    (["--listeners", "EXTERNAL://127.0.0.1:2"], "EXTERNAL has no security protocol"),
    (["--listeners", "PLAINTEXT://127.0.0.1:2", "--advertised-listeners", "OTHER://h:1"], "OTHER"),
    (["--listeners", "PLAINTEXT://127.0.0.1:2", "--advertised-listener", "h:1"],
     "--advertised-listeners"),
    (["--listeners", "PLAINTEXT://127.0.0.1:2,B://127.0.0.1:2", "--listener-security-protocol-map",
      "PLAINTEXT:PLAINTEXT,B:PLAINTEXT"], "a port of its own"),
])
def test_inconsistent_listeners_are_one_line_and_status_2(args: list[str], named: str) -> None:
    result = gateway(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_an_unknown_sasl_mechanism_is_one_line_and_status_2() -> None:
    result = gateway("--sasl-enabled-mechanisms", "SCRAM-SHA-256,GSSAPI")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "--sasl-enabled-mechanisms" in result.stderr


def test_tls_listeners_need_files_that_load(tmp_path: Path) -> None:
    missing = gateway("--listeners", "SSL://127.0.0.1:2")
    assert missing.returncode == 2 and "--ssl-certfile" in missing.stderr, missing.stderr
    (tmp_path / "cert.pem").write_text("not a certificate")
    bad = gateway("--listeners", "SSL://127.0.0.1:2", "--ssl-certfile", str(tmp_path / "cert.pem"),
                  "--ssl-keyfile", str(tmp_path / "cert.pem"))
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert "do not load" in bad.stderr
    no_ca = gateway("--listeners", "SSL://127.0.0.1:2", "--ssl-certfile", "c", "--ssl-keyfile", "k",
                    "--ssl-client-auth", "required")
    assert no_ca.returncode == 2 and "--ssl-cafile" in no_ca.stderr, no_ca.stderr
    auth = gateway("--ssl-client-auth", "always")
    assert auth.returncode == 2 and "--ssl-client-auth" in auth.stderr


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://h:1/0?ssl_ca_certs=/ca.pem", "need a rediss:// URL"),
    ("rediss://h:1/0?socket_timeout=3", "unknown query parameter 'socket_timeout'"),
    ("rediss://h:1/0?ssl_ca_certs=", "ssl_ca_certs: expected a file"),
    ("rediss://h:1/0?ssl_keyfile=/k.pem", "ssl_keyfile without ssl_certfile"),
    ("rediss://h:1/0?ssl_check_hostname=maybe", "ssl_check_hostname: expected true or false"),
])
def test_a_redis_url_with_tls_settings_it_cannot_use_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_redis_url(url)


def test_a_redis_url_with_tls_settings_is_taken_as_given() -> None:
    url = ("rediss://krg:pw@h:6380/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key"
           "&ssl_check_hostname=false")
    assert parse_redis_url(url) == url
    assert parse_redis_url("rediss://h:6380/0") == "rediss://h:6380/0"


def test_a_redis_ca_file_that_does_not_load_stops_the_start(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_config(["--redis-url", f"rediss://127.0.0.1:6380/0?ssl_ca_certs={tmp_path / 'none.pem'}"])
    assert stopped.value.code == 2
    assert "--redis-url: the TLS files" in capsys.readouterr().err
