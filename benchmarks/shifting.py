"""Shifting: placeholder until userns.shift lands."""

from __future__ import annotations

from _harness import Section

__all__ = ["run"]


def run(**_: object) -> Section:
    """Not available yet."""
    return Section("Shifting", unavailable="userns.shift has not landed")
