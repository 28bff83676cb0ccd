"""Helpers for the limits and metrics tests: the gateway's log and its metrics endpoint."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def wait_for_log(path: Path, text: str, timeout: float = 30) -> str:
    """The gateway log's first line containing ``text``, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {text!r} within {timeout} s in {path}")
        time.sleep(0.1)


def scrape(port: int) -> Samples:
    """Every sample the metrics endpoint serves, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the endpoint does not serve it (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a metric over all its label values."""
    return sum(found for (sample_name, _), found in samples.items() if sample_name == name)
