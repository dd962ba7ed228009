//! flag-service against unmodified OpenFeature providers: runs `scripts/flag-provider-e2e.sh`
//! (the pytest suite in `tests/providers/`) on this build's binary and fails with its output.
//!
//! The suite starts its own flag-service processes and drives the Python flagd provider (RPC
//! and in-process), OFREP over HTTP, a differential check against OpenFeature's JS flagd
//! evaluator and the flagd-testbed gherkin scenarios. Its own report lists the cases.
//!
//! Needs python3 (3.11+), node (20+) and npm. The first run creates `target/e2e/venv` and
//! `target/e2e/node` from `tests/providers/requirements.txt` and `package-lock.json`, which
//! downloads from PyPI and npm and takes a minute or two; later runs reuse them (reinstalled only
//! when those files change) and take four to six minutes, most of it the gherkin connection
//! scenarios (which wait out reconnects) and the differential check. A missing python/node/npm fails the test with the reason;
//! it is never skipped.

use std::path::Path;

#[test]
fn openfeature_providers_end_to_end() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/flag-provider-e2e.sh");
    switchyard_platform::testing::run_suite(&script, &[("FLAG_SERVICE_BIN", env!("CARGO_BIN_EXE_flag-service"))]);
}
