"""The flagd-testbed data (read-only, in ../shared/conformance/flagd-testbed next to the repo)
and the flag layouts its launchpad gives flagd, rebuilt in a temp directory for flag-service."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def root() -> Path:
    configured = os.environ.get("FLAG_E2E_TESTBED")
    path = Path(configured) if configured else Path(__file__).resolve().parents[6] / "shared/conformance/flagd-testbed"
    if not (path / "flags").is_dir() or not (path / "gherkin").is_dir():
        raise RuntimeError(
            f"flagd-testbed not found at {path} (expected ../shared/conformance/flagd-testbed next to the "
            "repository, or FLAG_E2E_TESTBED)"
        )
    return path


def flag_files() -> list[Path]:
    return sorted((root() / "flags").glob("*.json"))


def evaluator_flags() -> Path:
    return root() / "evaluator/flags/testkit-flags.json"


def merge_all_flags(files: list[Path]) -> dict:
    """What the launchpad writes to flags/allFlags.json: every flag file except `selector-*`,
    merged in file-name order (`flags`, `metadata` and `$evaluators` maps key by key)."""
    merged: dict = {}
    for path in sorted(files, key=lambda p: p.name):
        if path.name.startswith("selector"):
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        for section, value in document.items():
            if isinstance(value, dict):
                merged.setdefault(section, {}).update(value)
            else:
                merged[section] = value
    return merged


# Launchpad configurations (launchpad/configs/*.json): the sources flagd serves, as the paths
# flag-service is given, so `Flagd-Selector: <path>` means the same as for the testbed's flagd.
ALL_FLAGS = "flags/allFlags.json"
SELECTOR_FLAGS = "rawflags/selector-flags.json"
COMBINED_METADATA = "rawflags/selector-flag-combined-metadata.json"
CONFIGS = {
    "default": [ALL_FLAGS, SELECTOR_FLAGS],
    "sync-payload": [ALL_FLAGS, SELECTOR_FLAGS],
    "metadata": [COMBINED_METADATA],
}


def context_values(config: str) -> dict[str, str]:
    """The static context (flagd's --context-value) of a launchpad configuration."""
    path = root() / "launchpad" / "configs" / f"{config}.json"
    if not path.exists():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("context-value", {})
    return {str(key): str(value) for key, value in values.items()}


def lay_out(workdir: Path) -> None:
    """Copies the testbed flags to `workdir/rawflags` and writes `workdir/flags/allFlags.json`."""
    raw = workdir / "rawflags"
    raw.mkdir(parents=True, exist_ok=True)
    for path in flag_files():
        shutil.copyfile(path, raw / path.name)
    regenerate_all_flags(workdir)


def regenerate_all_flags(workdir: Path) -> float:
    from .server import write_atomically

    merged = merge_all_flags(sorted((workdir / "rawflags").glob("*.json")))
    return write_atomically(workdir / ALL_FLAGS, json.dumps(merged, indent=2))
