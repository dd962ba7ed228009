//! Compiles every proto under `proto/` into tonic stubs, pbjson serde impls and one
//! descriptor set (kept for reflection and HTTP transcoding). protoc comes vendored, so
//! nothing has to be installed on the machine.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "switchyard/runtime/v1/service_info.proto",
    "switchyard/config/v1/config_service.proto",
    "switchyard/config/v1/api_keys.proto",
    "switchyard/config/v1/delivery.proto",
    "switchyard/config/v1/governance.proto",
    "switchyard/flags/v1/flag_service.proto",
    "switchyard/experiments/v1/experiment_service.proto",
    "switchyard/realtime/v1/realtime_service.proto",
    "switchyard/realtime/v1/events.proto",
    "switchyard/presence/v1/presence_service.proto",
    // flagd's own protocols, so every OpenFeature flagd provider can talk to flag-service.
    "flagd/evaluation/v1/evaluation.proto",
    "flagd/evaluation/v2/evaluation.proto",
    "flagd/sync/v1/sync.proto",
];

const TESTING_PROTOS: &[&str] = &["switchyard/testing/v1/transcode_test.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let mut protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    if env::var_os("CARGO_FEATURE_TESTING").is_some() {
        protos.extend(TESTING_PROTOS.iter().map(|p| root.join(p)));
    }

    let descriptor_path = out.join("switchyard_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_with_config(config, &protos, &[root, well_known])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".switchyard", ".google.api"])?;

    // pbjson writes a serde file only for packages that define messages; an empty one for
    // the rest lets lib.rs include every package the same way.
    for package in [
        "config",
        "flags",
        "experiments",
        "realtime",
        "presence",
        "runtime",
        "testing",
    ] {
        let serde_file = out.join(format!("switchyard.{package}.v1.serde.rs"));
        if !serde_file.exists() {
            std::fs::write(serde_file, "")?;
        }
    }
    Ok(())
}
