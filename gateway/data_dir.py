"""The embedded server's data directory: private, locked, one server at a time.

A gateway that starts the embedded server holds an exclusive lock on
``<data-dir>/gateway.lock`` for its whole life, so a second gateway on the
same directory stops before it touches anything (two servers appending to one
append-only file would each show different data at the same offsets). The
kernel drops the lock when the process dies, however it dies.

The directory is 0700 and the files written here 0600: the append-only file
is every record, and ``redis-url`` and ``password`` are the key to the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import stat
import sys
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = "gateway.lock"
PASSWORD_FILE = "password"
# valkey-server writes its pid here at start and removes it on a clean exit
# (--pidfile), so a pid file left behind names a server that may still run.
SERVER_PID_FILE = "valkey.pid"


class DataDirInUse(RuntimeError):
    """Another gateway, or a server this start cannot stop, uses the data directory."""


def make_private(data_dir: Path) -> None:
    """Create the directory, or take back one made before, readable by its owner only.

    A directory that already holds something other than a gateway's data
    (--data-dir /tmp, or a home directory) keeps its modes, with a warning:
    closing it would lock others out of their own files.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = data_dir.stat()
    if stat.S_IMODE(status.st_mode) & 0o077 == 0:
        return
    if status.st_uid == os.getuid() and _holds_only_gateway_data(data_dir):
        data_dir.chmod(0o700)
    else:
        log.warning("%s is open to other users and holds more than a gateway's data, so its modes "
                    "stay; give the gateway a directory of its own (--data-dir)", data_dir)


def _holds_only_gateway_data(data_dir: Path) -> bool:
    # Empty, or made by a gateway (before modes were set, or by this one).
    with os.scandir(data_dir) as entries:
        empty = next(entries, None) is None
    return empty or (data_dir / "appendonlydir").is_dir() or (data_dir / LOCK_FILE).is_file()


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, also when it exists with wider modes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(fd, 0o600)
        file.write(text)


def password(data_dir: Path) -> str:
    """The embedded server's password: generated at the first start, kept in the data dir."""
    path = data_dir / PASSWORD_FILE
    with contextlib.suppress(FileNotFoundError):
        kept = path.read_text().strip()
        if kept:
            path.chmod(0o600)
            return kept
    generated = secrets.token_hex(32)
    write_private(path, generated + "\n")
    return generated


class DataDirLock:
    """An exclusive flock on <data-dir>/gateway.lock, naming its holder inside."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, holder: str) -> None:
        """Take the lock, or raise DataDirInUse naming the gateway that holds it.

        ``holder`` (this gateway's pid and listen address) is written into
        the file once the lock is ours, for the message a second start shows.
        """
        import fcntl  # POSIX only; imported here so that --redis-url works without it

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held_by = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirInUse(
                f"data directory {self.path.parent} is in use by {held_by}; "
                "stop that gateway or pass another --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        # The file stays: removing it would let a start that opened it just
        # before lock a file nobody else sees.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def leftover_server(data_dir: Path) -> int | None:
    """The pid of a server of this data directory still running from an earlier start.

    Raises DataDirInUse when the pid file names a live process that cannot be
    checked to be that server (no /proc): signalling it could hit a stranger
    that reused the pid, and starting beside it could be two servers on one
    append-only file.
    """
    pid_file = data_dir / SERVER_PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _running(pid):
        pid_file.unlink(missing_ok=True)
        return None
    if not Path("/proc").is_dir():
        raise DataDirInUse(
            f"{pid_file} names process {pid}, which may be a server still using {data_dir}: "
            "stop it (or remove the file if it is not) and start again")
    if _working_dir(pid) != data_dir.resolve():
        pid_file.unlink(missing_ok=True)  # the pid was reused by something else
        return None
    return pid


def stop_process(pid: int) -> None:
    # SIGTERM: valkey-server flushes and fsyncs the append-only file, removes
    # its pid file, then exits; the same as SHUTDOWN.
    os.kill(pid, signal.SIGTERM)


def process_gone(pid: int) -> bool:
    return not _running(pid)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead server whose parent has not reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process; not ours to judge, so treat it as running
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _working_dir(pid: int) -> Path | None:
    # valkey-server chdirs into its --dir, so its working directory says
    # which data directory it serves.
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def die_with_parent(gateway_pid: int) -> None:
    """In the server's child process before exec: get SIGTERM when the gateway dies.

    Linux's PR_SET_PDEATHSIG fires when the *thread* that forked exits, so
    the server must be started from the thread that lives as long as the
    gateway (the main thread, which runs the event loop).
    """
    if sys.platform != "linux":
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != gateway_pid:  # the gateway died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1
if sys.platform == "linux":
    import ctypes

    # Loaded here, not in the child, where a fork of a threaded process must
    # do as little as possible.
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
