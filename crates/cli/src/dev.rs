//! `switchyard dev`: all five services in one process, each on its own ports with its own
//! SQLite file under the data directory, sharing one shutdown signal. The admin API key is
//! created at first start, kept in `<data_dir>/admin-api-key` (mode 0600) and printed on
//! every start, since this mode is for a laptop or a single small node.

use std::path::{Path, PathBuf};

use clap::Args;
use switchyard_platform::{
    Running, Shutdown,
    auth::{ApiKeyRecord, generate_api_key, hash_api_key},
};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Settings file shared by all five services (top-level keys for all,
    /// `[services.<key>]` for one). Defaults to ./switchyard.toml when present.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Serve a flagd flag file (JSON, or YAML by extension) from flag-service, reloading it
    /// when it changes. Repeatable; later files override flags of earlier ones with the same
    /// key. Added after any `flags_files` in the settings file; its selector is
    /// `source=<PATH as given>`.
    #[arg(long = "flags-file", value_name = "PATH")]
    flags_files: Vec<PathBuf>,
}

const ADMIN_TENANT: &str = "default";

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let file = args.config.as_deref();
    let config = config_service::conf::load(file)?;
    let mut flags = flag_service::conf::load(file)?;
    flags.service.flags_files.extend(args.flags_files);
    let experiments = experiment_service::conf::load(file)?;
    let mut realtime = realtime_gateway::conf::load(file)?;
    let presence = presence_service::conf::load(file)?;

    let (admin_key, record) = admin_key(&config.data_dir)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();

    let config = config_service::start(with_key(config, &record), shutdown.clone()).await?;
    let flags = flag_service::start(with_key(flags, &record), shutdown.clone()).await?;
    // `$config`/`$flags` channels: the gateway watches its neighbours with the admin key.
    for (service, running) in [("config-service", &config), ("flag-service", &flags)] {
        realtime
            .peers
            .entry(service.to_owned())
            .or_insert_with(|| vec![format!("http://{}", loopback_if_unspecified(running.grpc_addr))]);
    }
    realtime.service.live.api_key.get_or_insert_with(|| admin_key.clone());
    let running = [
        ("config-service", config),
        ("flag-service", flags),
        (
            "experiment-service",
            experiment_service::start(with_key(experiments, &record), shutdown.clone()).await?,
        ),
        (
            "realtime-gateway",
            realtime_gateway::start(with_key(realtime, &record), shutdown.clone()).await?,
        ),
        (
            "presence-service",
            presence_service::start(with_key(presence, &record), shutdown.clone()).await?,
        ),
    ];
    print_banner(&running, &admin_key);
    futures::future::join_all(running.into_iter().map(|(_, running)| running.wait())).await;
    println!("switchyard dev stopped");
    Ok(())
}

/// A listener bound to every interface is reached on loopback.
fn loopback_if_unspecified(address: std::net::SocketAddr) -> std::net::SocketAddr {
    if address.ip().is_unspecified() {
        return std::net::SocketAddr::from(([127, 0, 0, 1], address.port()));
    }
    address
}

fn with_key<S>(
    mut settings: switchyard_platform::Settings<S>,
    record: &ApiKeyRecord,
) -> switchyard_platform::Settings<S> {
    settings.auth.api_keys.push(record.clone());
    settings
}

/// Reads the admin key of this data directory, creating it at first start.
fn admin_key(data_dir: &Path) -> anyhow::Result<(String, ApiKeyRecord)> {
    let path = data_dir.join("admin-api-key");
    let plaintext = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key = generate_api_key(ADMIN_TENANT, &["admin"]).plaintext;
            write_private(&path, &key)?;
            key
        }
        Err(error) => return Err(error.into()),
    };
    let id = plaintext.split('_').nth(1).unwrap_or("admin").to_owned();
    let record = ApiKeyRecord {
        id,
        sha256: hash_api_key(&plaintext),
        tenant: ADMIN_TENANT.to_owned(),
        roles: vec!["admin".to_owned()],
        scopes: Vec::new(),
    };
    Ok((plaintext, record))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

fn print_banner(running: &[(&str, Running)], admin_key: &str) {
    println!();
    println!("Switchyard dev is running (Ctrl-C to stop)\n");
    println!("  {:<20} {:>6} {:>6}", "service", "HTTP", "gRPC");
    for (name, running) in running {
        println!(
            "  {:<20} {:>6} {:>6}",
            name,
            running.http_addr.port(),
            running.grpc_addr.port()
        );
    }
    println!();
    println!("  admin API key (tenant `{ADMIN_TENANT}`): {admin_key}");
    println!(
        "  try: curl -s localhost:{}/v1/config/info",
        running.first().map_or(8015, |(_, r)| r.http_addr.port())
    );
    println!();
}
