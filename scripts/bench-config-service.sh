#!/usr/bin/env bash
# Runs config-service's data-plane benchmark side by side with etcd: installs Debian's
# etcd-server when it is missing (the benchmark starts its own etcd on loopback ports and
# stops it afterwards), makes sure PostgreSQL answers, then runs the load generator.
# Results: bench/results/config-service.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }

if ! command -v etcd >/dev/null 2>&1; then
  echo "installing etcd-server from Debian's packages"
  $(need_root) apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -qq etcd-server
  # The package starts a system etcd on 2379; the benchmark uses its own on free ports.
  $(need_root) systemctl stop etcd 2>/dev/null || $(need_root) service etcd stop 2>/dev/null || true
fi

./scripts/ensure-backing-services.sh
cargo bench -p config-service --bench delivery
