"""OpenFeature's JS flagd evaluator (@openfeature/flagd-core) as a reference, through
harness/flagd_core_eval.js."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("flagd_core_eval.js")


def evaluate(requests: list[dict], timeout: float = 300.0) -> list[dict]:
    """Evaluates `requests` ({file, flag, type, default, context}) in one node process."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required for the reference evaluator but is not on PATH")
    modules = os.environ.get("FLAG_E2E_NODE_MODULES")
    if not modules or not (Path(modules) / "@openfeature/flagd-core").is_dir():
        raise RuntimeError(
            f"@openfeature/flagd-core not found in FLAG_E2E_NODE_MODULES={modules!r}; run through scripts/flag-provider-e2e.sh"
        )
    payload = "".join(json.dumps(request) + "\n" for request in requests)
    completed = subprocess.run(
        [node, str(SCRIPT)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NODE_PATH": modules},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"reference evaluator failed ({completed.returncode}):\n{completed.stderr}")
    answers = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    if len(answers) != len(requests):
        raise RuntimeError(f"reference evaluator answered {len(answers)} of {len(requests)} requests:\n{completed.stderr}")
    return answers
