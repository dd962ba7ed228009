//! `switchyard dev`: all five services in one process, each on its own ports with its own
//! SQLite file under the data directory, sharing one shutdown signal. The admin API key is
//! created at first start, kept in `<data_dir>/admin-api-key` (mode 0600) and printed on
//! every start, since this mode is for a laptop or a single small node. So is an HS256
//! secret (`<data_dir>/jwt-hs256-secret`), which `switchyard token` signs client tokens with.
//! The services other than config-service follow its key store with a sync key made fresh
//! at every start and never written down.

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
    let jwt_secret = secret_file(&config.data_dir.join(JWT_SECRET_FILE), || {
        hex::encode(rand::random::<[u8; 32]>())
    })?;
    let keys = DevKeys::new(record, jwt_secret);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();

    // Deployment events and break-glass notices go out on `$deployments:{project}` through the
    // gateway, which starts later: its port is known from its settings (0 picks none).
    let mut config = config;
    if realtime.grpc.port != 0 {
        config
            .peers
            .entry("realtime-gateway".to_owned())
            .or_insert_with(|| vec![format!("http://127.0.0.1:{}", realtime.grpc.port)]);
    }
    let config = config_service::start(keys.apply(config, None), shutdown.clone()).await?;
    let key_store = format!("http://{}", loopback_if_unspecified(config.grpc_addr));
    let key_store = Some(key_store.as_str());
    let flags = flag_service::start(keys.apply(flags, key_store), shutdown.clone()).await?;
    // `$config`/`$flags` channels: the gateway watches its neighbours with the admin key.
    realtime
        .peers
        .entry("flag-service".to_owned())
        .or_insert_with(|| vec![format!("http://{}", loopback_if_unspecified(flags.grpc_addr))]);
    realtime.service.live.api_key.get_or_insert_with(|| admin_key.clone());
    // Experiments write their rules into flags.
    let mut experiments = experiments;
    experiments
        .peers
        .entry("flag-service".to_owned())
        .or_insert_with(|| vec![format!("http://{}", loopback_if_unspecified(flags.grpc_addr))]);
    // The gateway reports its connections to presence-service.
    let presence = presence_service::start(keys.apply(presence, key_store), shutdown.clone()).await?;
    realtime
        .peers
        .entry("presence-service".to_owned())
        .or_insert_with(|| vec![format!("http://{}", loopback_if_unspecified(presence.grpc_addr))]);
    let realtime = realtime_gateway::start(keys.apply(realtime, key_store), shutdown.clone()).await?;
    // Experiments that stop themselves announce it on `$experiments:{project}`.
    experiments
        .peers
        .entry("realtime-gateway".to_owned())
        .or_insert_with(|| vec![format!("http://{}", loopback_if_unspecified(realtime.grpc_addr))]);
    let running = [
        ("config-service", config),
        ("flag-service", flags),
        (
            "experiment-service",
            experiment_service::start(keys.apply(experiments, key_store), shutdown.clone()).await?,
        ),
        ("realtime-gateway", realtime),
        ("presence-service", presence),
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

/// The credentials every dev service shares: the admin key, the key-sync credential
/// (fresh at every start, never written down) and the HS256 secret for client tokens.
struct DevKeys {
    admin: ApiKeyRecord,
    key_sync: String,
    jwt_secret: String,
}

impl DevKeys {
    fn new(admin: ApiKeyRecord, jwt_secret: String) -> Self {
        Self {
            admin,
            key_sync: generate_api_key(ADMIN_TENANT, &[]).plaintext,
            jwt_secret,
        }
    }

    /// Adds the keys to one service's settings; `key_store` is config-service's address for
    /// the services that follow it. Settings the user gave win.
    fn apply<S>(
        &self,
        mut settings: switchyard_platform::Settings<S>,
        key_store: Option<&str>,
    ) -> switchyard_platform::Settings<S> {
        settings.auth.api_keys.push(self.admin.clone());
        settings
            .auth
            .jwt_hs256_secret
            .get_or_insert_with(|| self.jwt_secret.clone());
        settings
            .auth
            .key_sync_credential
            .get_or_insert_with(|| self.key_sync.clone());
        if let Some(address) = key_store {
            settings
                .peers
                .entry("config-service".to_owned())
                .or_insert_with(|| vec![address.to_owned()]);
        }
        settings
    }
}

/// Where `switchyard dev` keeps the HS256 secret of its data directory.
pub const JWT_SECRET_FILE: &str = "jwt-hs256-secret";

/// Reads a secret of the data directory, creating it with `generate` at first start (mode
/// 0600, like every credential `switchyard dev` keeps).
fn secret_file(path: &Path, generate: impl FnOnce() -> String) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let secret = generate();
            write_private(path, &secret)?;
            Ok(secret)
        }
        Err(error) => Err(error.into()),
    }
}

/// Reads the admin key of this data directory, creating it at first start.
fn admin_key(data_dir: &Path) -> anyhow::Result<(String, ApiKeyRecord)> {
    let plaintext = secret_file(&data_dir.join("admin-api-key"), || {
        generate_api_key(ADMIN_TENANT, &["admin"]).plaintext
    })?;
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
    println!("  client tokens for the gateway: switchyard token --user 42 --channel 'user#42' --ttl 1h");
    println!(
        "  try: curl -s localhost:{}/v1/config/info",
        running.first().map_or(8015, |(_, r)| r.http_addr.port())
    );
    println!();
}
