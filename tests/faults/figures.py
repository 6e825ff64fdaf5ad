"""Figures the fault suite measures, printed at the end of the test session (so CI logs show
the soak's numbers next to the test results)."""

from __future__ import annotations

FIGURES: dict[str, str] = {}


def record(name: str, text: str) -> None:
    FIGURES[name] = text
