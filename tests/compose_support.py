"""Reading compose/*.yaml as text (no YAML library, no Docker engine here): a service's
lists and mappings, in the block style the project's compose files are written in."""

from __future__ import annotations

import re
from pathlib import Path

COMPOSE_DIR = Path(__file__).resolve().parents[1] / "compose"


def service_lines(path: Path, service: str) -> list[str]:
    """The lines of one service's block under ``services:``."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if re.fullmatch(r"  [\w-]+:", line):
            inside = line.strip() == f"{service}:"
        elif re.match(r"\S", line):
            inside = False
        elif inside:
            lines.append(line)
    if not lines:
        raise LookupError(f"no service {service} in {path}")
    return lines


def _block(lines: list[str], key: str) -> list[str]:
    """The non-comment lines nested under ``key:`` (indented deeper than it)."""
    found, depth = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if depth is None:
            if re.fullmatch(rf"{key}:(\s+&[\w-]+)?", line.strip()):  # an anchor may follow
                depth = indent
        elif line.strip() and indent <= depth:
            break
        elif line.strip() and not line.strip().startswith("#"):
            found.append(line.strip())
    return found


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" else text


def list_under(lines: list[str], key: str) -> list[str]:
    """A block list's items (``- item``)."""
    return [_unquoted(item.removeprefix("- ")) for item in _block(lines, key) if item.startswith("- ")]


def mapping_under(lines: list[str], key: str) -> dict[str, str]:
    """A block mapping's ``NAME: value`` pairs."""
    pairs = (item.split(": ", 1) for item in _block(lines, key) if ": " in item)
    return {name: _unquoted(value) for name, value in pairs}
