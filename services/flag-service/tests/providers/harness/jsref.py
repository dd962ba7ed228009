"""Node helpers: OpenFeature's JS flagd evaluator (@openfeature/flagd-core) as a reference,
through harness/flagd_core_eval.js, and the JS flagd provider through
harness/js_provider_check.js. node_modules come from scripts/flag-provider-e2e.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def run_node(script: str, stdin: str, timeout: float) -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required but is not on PATH")
    modules = os.environ.get("FLAG_E2E_NODE_MODULES")
    if not modules or not (Path(modules) / "@openfeature/flagd-core").is_dir():
        raise RuntimeError(
            f"Node packages not found in FLAG_E2E_NODE_MODULES={modules!r}; run through scripts/flag-provider-e2e.sh"
        )
    completed = subprocess.run(
        [node, str(HERE / script)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NODE_PATH": modules},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{script} failed ({completed.returncode}):\n{completed.stderr}\n{completed.stdout}")
    return completed.stdout


def evaluate(requests: list[dict], timeout: float = 300.0) -> list[dict]:
    """Evaluates `requests` ({file, flag, type, default, context}) with flagd-core."""
    payload = "".join(json.dumps(request) + "\n" for request in requests)
    out = run_node("flagd_core_eval.js", payload, timeout)
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(answers) != len(requests):
        raise RuntimeError(f"reference evaluator answered {len(answers)} of {len(requests)} requests")
    return answers


def provider_check(request: dict, timeout: float = 120.0) -> dict:
    """Runs the JS flagd provider against a server (see js_provider_check.js)."""
    return json.loads(run_node("js_provider_check.js", json.dumps(request), timeout))
