"""How long a key created or revoked in config-service's key store takes to be honoured or
refused by another service (flag-service), measured from outside on a fresh `switchyard dev`:
from the start of the CreateApiKey (or RevokeApiKey) call until flag-service answers 200 (or
401) with that key. Writes bench/results/key-propagation.json.

    python3 scripts/bench-key-propagation.py [SAMPLES]     (`make bench-keys`; needs target/debug/switchyard)
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("SWITCHYARD_BENCH_BIN", os.path.join(REPO, "target", "debug", "switchyard"))


def call(method, url, key, body=None):
    request = urllib.request.Request(
        url, method=method, data=body.encode() if body else None, headers={"authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def until(status, url, key, deadline_s=10):
    stop = time.perf_counter() + deadline_s
    while call("GET", url, key)[0] != status:
        if time.perf_counter() > stop:
            raise SystemExit(f"{url} never answered {status}")


def main(samples):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env.update(SWITCHYARD_GRPC__PORT="0", SWITCHYARD_HTTP__PORT="0", SWITCHYARD_TELEMETRY__LOG_FILTER="error")
    dev = subprocess.Popen(
        [BINARY, "dev"], cwd=tempfile.mkdtemp(), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    ports, admin = {}, None
    for line in dev.stdout:
        words = line.split()
        if len(words) == 3 and words[1].isdigit():
            ports[words[0]] = int(words[1])
        if "admin API key" in line:
            admin = line.rsplit(" ", 1)[1].strip()
            break
    config = f"http://127.0.0.1:{ports['config-service']}"
    flags = f"http://127.0.0.1:{ports['flag-service']}/v1/projects/x/flags"
    honoured, refused = [], []
    try:
        for index in range(samples):
            start = time.perf_counter()
            _, body = call("POST", f"{config}/v1/apiKeys", admin, json.dumps({"displayName": f"b{index}", "roles": ["viewer"]}))
            created = json.loads(body)
            until(200, flags, created["secret"])
            honoured.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            call("POST", f"{config}/v1/apiKeys/{created['apiKey']['id']}:revoke", admin, "{}")
            until(401, flags, created["secret"])
            refused.append((time.perf_counter() - start) * 1000)
    finally:
        dev.terminate()
        dev.wait()
    summary = lambda values: {"median_ms": round(statistics.median(values), 1), "max_ms": round(max(values), 1)}
    result = {
        "what": "create/revoke call start -> flag-service honours/refuses the key (switchyard dev, SQLite, debug build)",
        "samples": samples,
        "created_to_honoured": summary(honoured),
        "revoked_to_refused": summary(refused),
        "target_ms": 2000,
    }
    path = os.path.join(REPO, "bench", "results", "key-propagation.json")
    with open(path, "w") as out:
        json.dump(result, out, indent=2)
        out.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
