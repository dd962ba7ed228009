//! `switchyard dev` started the way the tests need it: every port on 0, so tests never
//! collide, and the ports and admin key read from what it prints.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// A running `switchyard dev`: its process, the ports it printed (name, HTTP, gRPC) and
/// its admin key.
pub struct Dev {
    pub child: Child,
    pub ports: Vec<(String, u16, u16)>,
    pub admin_key: String,
}

/// A test that fails half-way still leaves no process behind.
impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with every port on 0 (so tests never collide) in `dir`.
pub fn start(dir: &std::path::Path) -> Dev {
    start_with(dir, &[])
}

/// As [`start`], with more arguments for `switchyard dev`.
pub fn start_with(dir: &std::path::Path, args: &[&str]) -> Dev {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("dev")
        .args(args)
        .current_dir(dir)
        .env("SWITCHYARD_GRPC__PORT", "0")
        .env("SWITCHYARD_HTTP__PORT", "0")
        .env("SWITCHYARD_TELEMETRY__LOG_FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ports = Vec::new();
    let admin_key = loop {
        let line = lines
            .next()
            .expect("switchyard dev exited before printing its key")
            .unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name, http, grpc] = words[..]
            && let (Ok(http), Ok(grpc)) = (http.parse(), grpc.parse())
        {
            ports.push((name.to_owned(), http, grpc));
        }
        if let Some(key) = line.split("): ").nth(1).filter(|_| line.contains("admin API key")) {
            break key.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Dev {
        child,
        ports,
        admin_key,
    }
}

/// The (HTTP, gRPC) ports of `service`.
pub fn port_of(dev: &Dev, service: &str) -> (u16, u16) {
    let (_, http, grpc) = dev.ports.iter().find(|(name, _, _)| name == service).unwrap();
    (*http, *grpc)
}
