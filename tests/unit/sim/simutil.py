"""Helpers shared by the simulator tests."""

from __future__ import annotations


def run_for(measurement, duration_ps: int) -> None:
    """Acquire for ``duration_ps`` of tag time and wait (bounded) until done."""
    measurement.startFor(int(duration_ps))
    assert measurement.waitUntilFinished(60_000), "measurement did not finish within 60 s"
