//! The README as a newcomer uses it: every ```sh block, in order, pasted into one shell next
//! to a fresh `switchyard dev`. A command that exits non-zero fails the walk, and so does an
//! HTTP error answer (curl runs with `--fail-with-body`), so the README cannot drift from what
//! the services do. ```shell blocks are illustrations that cannot run here (they start
//! servers, stream forever or need a cluster) and are skipped; so is `grpcurl` when it is not
//! installed, with a line saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use support::{Dev, port_of, start};

/// The ```sh blocks of the README, each with the line it starts on.
fn sh_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some((index + 2, String::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The README's default ports, each replaced by the one this dev instance got.
fn with_ports(script: &str, dev: &Dev) -> String {
    let defaults = [
        ("config-service", 8015, 9015),
        ("flag-service", 8016, 9016),
        ("experiment-service", 8017, 9017),
        ("realtime-gateway", 8018, 9018),
        ("presence-service", 8019, 9019),
    ];
    let mut out = script.to_owned();
    for (name, http, grpc) in defaults {
        let (real_http, real_grpc) = port_of(dev, name);
        out = out.replace(&format!("localhost:{http}"), &format!("localhost:{real_http}"));
        out = out.replace(&format!("localhost:{grpc}"), &format!("localhost:{real_grpc}"));
    }
    out
}

fn prelude(dev: &Dev) -> String {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"))
        .parent()
        .unwrap()
        .to_owned();
    let grpc = |name: &str| port_of(dev, name).1;
    format!(
        "set -euo pipefail\n\
         export PATH={bin}:$PATH\n\
         export SY_CONFIG_SERVER=http://127.0.0.1:{config} SY_FLAG_SERVER=http://127.0.0.1:{flags}\n\
         export SY_PRESENCE_SERVER=http://127.0.0.1:{presence} SY_EXPERIMENT_SERVER=http://127.0.0.1:{experiments}\n\
         curl() {{ command curl --fail-with-body --show-error --max-time 20 \"$@\"; echo; }}\n\
         command -v grpcurl >/dev/null || grpcurl() {{ echo \"(grpcurl is not installed: skipped)\"; }}\n",
        bin = bin_dir.display(),
        config = grpc("config-service"),
        flags = grpc("flag-service"),
        presence = grpc("presence-service"),
        experiments = grpc("experiment-service"),
    )
}

#[test]
fn every_sh_block_of_the_readme_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 5, "the README has its walkthroughs");
    let dir = tempfile::tempdir().unwrap();
    let dev = start(dir.path());
    let mut script = prelude(&dev);
    for (line, block) in &blocks {
        script.push_str(&format!("echo '>>> README.md line {line}'\nset -x\n"));
        script.push_str(&with_ports(block, &dev));
        script.push_str("set +x\n");
    }
    // Output goes to files: a pipe nobody reads while the walk runs would fill and stall it.
    let (out_path, err_path) = (dir.path().join("walk.out"), dir.path().join("walk.err"));
    let mut walk = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while walk.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = walk.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = walk.wait().unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "the README walk stopped ({status:?}):\n--- stdout (last 30 lines)\n{}\n--- stderr (last 40 lines)\n{}",
        tail(&stdout, 30),
        tail(&stderr, 40)
    );
    drop(dev);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
