"""docs/migration.md is true: its commands run, in order, and print what it says.

Each ```sh block runs with bash against a Redis and a gateway of this test's
own (BOOTSTRAP and REDIS_URL point at them). A ``<!-- doc-test: MODE -->``
line before a block says how: ``background`` (a server the guide starts;
stopped at the end), ``java`` (needs Kafka's tools, skipped where
/opt/kafka-java is absent), ``skip`` (never run), ``expect`` (a ```text block:
lines the previous block must print, in order, ``...`` matching anything).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_redis_gateway.gateway.embedded import find_server_binary, free_port, wait_for_port

from tests.servers import RedisServer

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migration.md"
JAVA_BIN = Path("/opt/kafka-java/bin")
BLOCK = re.compile(r"(?:<!-- doc-test: (?P<mode>[\w-]+)[^>]*-->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```",
                   re.DOTALL)


@dataclass
class Step:
    mode: str  # run, background, java, skip
    script: str
    expected: list[str]


def steps(text: str) -> list[Step]:
    found: list[Step] = []
    for match in BLOCK.finditer(text):
        mode, lang, body = match["mode"] or "run", match["lang"], match["body"]
        if lang == "sh":
            found.append(Step(mode, body, []))
        elif mode == "expect":
            assert found, "an expect block before any command"
            found[-1].expected = [line for line in body.splitlines() if line.strip()]
    return found


def line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def assert_printed(expected: list[str], output: str, script: str) -> None:
    """Each expected line matches an output line, in order."""
    lines = iter(line.rstrip() for line in output.splitlines())
    for wanted in expected:
        pattern = line_pattern(wanted)
        assert any(pattern.fullmatch(line) for line in lines), (
            f"{wanted!r} not printed (in order) by:\n{script}\noutput:\n{output}")


def tool_path(tmp_path: Path) -> str:
    """PATH with this venv's python3 and kafka-redis-gateway first, redis-cli, and Kafka's tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if shutil.which("redis-cli") is None:
        (bin_dir / "redis-cli").symlink_to(Path(find_server_binary()).with_name("valkey-cli"))
    dirs = [str(bin_dir), str(Path(sys.executable).parent)]
    if JAVA_BIN.is_dir():
        dirs.append(str(JAVA_BIN))
    return os.pathsep.join([*dirs, os.environ.get("PATH", "")])


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not on PATH")
def test_migration_guide_runs(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    port = free_port()
    env = {**os.environ, "BOOTSTRAP": f"127.0.0.1:{port}", "REDIS_URL": redis_server.url,
           "PATH": tool_path(tmp_path)}
    background: list[subprocess.Popen[bytes]] = []
    try:
        for step in steps(GUIDE.read_text()):
            if step.mode == "skip" or (step.mode == "java" and not JAVA_BIN.is_dir()):
                continue
            if step.mode == "background":
                background.append(subprocess.Popen(["bash", "-c", step.script], env=env,
                                                   start_new_session=True))
                wait_for_port(port, background[-1])
                continue
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", step.script], env=env,
                                  capture_output=True, text=True, timeout=180, check=False)
            assert done.returncode == 0, f"{step.script}\nexited {done.returncode}:\n{done.stderr}"
            assert_printed(step.expected, done.stdout, step.script)
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        redis_server.stop()


def test_the_guide_has_its_steps() -> None:
    """The parser sees the guide's commands, so the test above checks them."""
    found = steps(GUIDE.read_text())
    assert [step.mode for step in found].count("background") == 1
    assert sum(1 for step in found if step.expected) >= 6
