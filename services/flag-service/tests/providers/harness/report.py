"""Measurements the suite prints at the end (and writes to $FLAG_E2E_REPORT as JSON)."""

from __future__ import annotations

import json
import os
import statistics
import threading

_lock = threading.Lock()
latencies: dict[str, list[float]] = {}
notes: list[str] = []


def latency(name: str, seconds: float) -> None:
    with _lock:
        latencies.setdefault(name, []).append(seconds)


def note(text: str) -> None:
    with _lock:
        notes.append(text)


def summary_lines() -> list[str]:
    lines = []
    for name, values in sorted(latencies.items()):
        ms = sorted(v * 1000 for v in values)
        lines.append(
            f"{name}: n={len(ms)} min={ms[0]:.1f}ms median={statistics.median(ms):.1f}ms max={ms[-1]:.1f}ms"
            f"  [{', '.join(f'{v:.1f}' for v in ms)}]"
        )
    lines.extend(notes)
    return lines


def write() -> None:
    path = os.environ.get("FLAG_E2E_REPORT")
    if not path:
        return
    data = {"latencies_ms": {k: [round(v * 1000, 1) for v in vs] for k, vs in latencies.items()}, "notes": notes}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
