//! realtime-gateway against real clients: runs `scripts/realtime-e2e.sh` (the pytest suite in
//! `tests/clients/`) on this build's binary and fails with its output.
//!
//! The suite starts its own gateway processes: Python's `websockets` subscribes while Python
//! publishes through the gRPC API; clients cut off mid-stream recover across three nodes
//! (Redis) and after one is killed, counting gaps and duplicates; a plain HTTP client resumes
//! SSE with Last-Event-ID; Debian's Chromium, driven by playwright-core, opens `/demo` and
//! shows a publication.
//!
//! Needs python3 (3.11+), node (20+), npm and Chromium (the script installs Debian's package
//! when it is missing). The first run creates `target/e2e/realtime/{venv,node}` from the
//! pinned `requirements.txt` and `package-lock.json`. A missing tool fails the test with the
//! reason; it is never skipped.

use std::path::Path;

#[test]
fn real_clients_end_to_end() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/realtime-e2e.sh");
    switchyard_platform::testing::run_suite(
        &script,
        &[("REALTIME_GATEWAY_BIN", env!("CARGO_BIN_EXE_realtime-gateway"))],
    );
}
