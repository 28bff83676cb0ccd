"""./dev installs the package only when pyproject.toml changed since the venv's last install.

Run against a copy of the real script with a stand-in venv whose python
records `pip install` instead of running it (the install itself is pip's).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# `python -m pip install ...` is recorded (and fails when PIP_FAILS=1);
# `./dev test`'s ruff, mypy and pytest succeed at once; the rest is Python.
FAKE_PYTHON = """#!/bin/sh
case "$1 $2 $3" in
  "-m pip install") echo "$4 $5 $6" >> "$PIP_LOG"; exit "$PIP_FAILS";;
  "-m ruff "* | "-m mypy "* | "-m pytest "*) exit 0;;
esac
exec @PYTHON@ "$@"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "dev", tmp_path / "dev")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in [("python", FAKE_PYTHON.replace("@PYTHON@", sys.executable)),
                       ("kafka-redis-gateway", '#!/bin/sh\necho "gateway $*"\n')]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    return tmp_path


def dev(checkout: Path, *args: str, pip_fails: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VENV"}
    env.update(PIP_LOG=str(checkout / "pip.log"), PIP_FAILS="1" if pip_fails else "0")
    return subprocess.run([str(checkout / "dev"), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def installs(checkout: Path) -> list[str]:
    log = checkout / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def test_run_installs_once_then_only_when_pyproject_changes(checkout: Path) -> None:
    first = dev(checkout, "run", "--listen", "127.0.0.1:1")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "gateway --listen 127.0.0.1:1\n"
    assert installs(checkout) == ["-q -e ."]

    assert dev(checkout, "run").returncode == 0
    assert installs(checkout) == ["-q -e ."]  # the second start did not reinstall
    assert dev(checkout, "gateway", "inspect").stdout == "gateway inspect\n"
    assert installs(checkout) == ["-q -e ."]

    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new dependency, say\n")
    assert dev(checkout, "run").returncode == 0
    assert installs(checkout) == ["-q -e .", "-q -e ."]


def test_a_failed_install_is_tried_again(checkout: Path) -> None:
    assert dev(checkout, "run", pip_fails=True).returncode == 1
    assert dev(checkout, "run").returncode == 0
    assert dev(checkout, "run").returncode == 0
    assert installs(checkout) == ["-q -e .", "-q -e ."]


def test_the_test_extras_are_installed_once_and_cover_run(checkout: Path) -> None:
    assert dev(checkout, "test").returncode == 0
    assert dev(checkout, "test").returncode == 0
    assert dev(checkout, "run").returncode == 0
    assert installs(checkout) == ["-q -e .[test,bench]"]
