//! `switchyard keys`: API keys. `create`, `list` and `revoke` work with config-service's key
//! store, which every service follows within seconds, so nothing restarts. `generate` makes
//! a key for the settings file instead (`[[auth.api_keys]]`), for credentials that must
//! exist before any service runs.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use switchyard_api::config::v1::{self as pb, api_key_service_client::ApiKeyServiceClient};
use switchyard_platform::{
    auth::{RoleBinding, check_tenant, generate_api_key},
    settings::parse_duration,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    config::client::ServerArgs,
    grpc::{self, Bearer},
    output::{Output, print_json, print_table, time},
};

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// config-service holds the key store; the key must be an admin's of the tenant.
    #[command(flatten)]
    server: ServerArgs,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key in the key store; prints the secret once. It works on every service
    /// within seconds.
    Create(CreateArgs),
    /// List the tenant's keys (with `--all`, revoked and expired ones too).
    List(ListArgs),
    /// Revoke a key; every service refuses it within seconds.
    Revoke(RevokeArgs),
    /// Generate a key for the settings file instead of the key store; prints the key once and
    /// the `[[auth.api_keys]]` entry to add to switchyard.toml.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the key is for (shown in lists and audit records).
    #[arg(long)]
    name: String,
    /// Role bindings: `viewer`, `editor`, `publisher`, `admin`, optionally scoped with
    /// `:resource` (for example `editor:projects/shop`). Repeatable.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    /// Extra scopes such as `secrets:reveal`. Repeatable.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// How long the key works: `90d`, `12h`, `30m`. Without it, until revoked.
    #[arg(long)]
    ttl: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include revoked and expired keys.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (or `apiKeys/<id>`), as `keys list` shows it.
    id: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The tenant the key acts for.
    #[arg(long)]
    tenant: String,
    /// Role bindings, as for `create`. Repeatable.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
}

type Client = ApiKeyServiceClient<InterceptedService<Channel, Bearer>>;

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let KeysArgs {
        server,
        output,
        command,
    } = args;
    let connect = || -> anyhow::Result<Client> {
        let (channel, bearer) = server.connect()?;
        Ok(ApiKeyServiceClient::with_interceptor(channel, bearer))
    };
    match command {
        KeysCommand::Generate(generate_args) => generate(&generate_args),
        KeysCommand::Create(create_args) => create(&mut connect()?, create_args, output).await,
        KeysCommand::List(list_args) => list(&mut connect()?, &list_args, output).await,
        KeysCommand::Revoke(revoke_args) => revoke(&mut connect()?, &revoke_args, output).await,
    }
}

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(status, "is config-service running at --server / SY_CONFIG_SERVER?")
}

async fn create(client: &mut Client, args: CreateArgs, output: Output) -> anyhow::Result<()> {
    let expire_time = args.ttl.as_deref().map(expiry).transpose()?;
    let request = pb::CreateApiKeyRequest {
        display_name: args.name,
        roles: args.roles,
        scopes: args.scopes,
        expire_time,
    };
    let created = client
        .create_api_key(request)
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    if output == Output::Json {
        return print_json(&created);
    }
    let key = created.api_key.unwrap_or_default();
    println!("API key (shown once): {}", created.secret);
    println!(
        "id {}  roles {}  expires {}",
        key.id,
        key.roles.join(","),
        time(key.expire_time.as_ref())
    );
    Ok(())
}

/// The moment a key with time-to-live `ttl` expires, from now.
fn expiry(ttl: &str) -> anyhow::Result<pbjson_types::Timestamp> {
    let ttl = parse_duration(ttl)
        .filter(|ttl| !ttl.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--ttl {ttl}: expected a duration such as 90d, 12h or 30m"))?;
    let at = SystemTime::now().duration_since(UNIX_EPOCH)? + ttl;
    Ok(pbjson_types::Timestamp {
        seconds: i64::try_from(at.as_secs())?,
        nanos: 0,
    })
}

async fn list(client: &mut Client, args: &ListArgs, output: Output) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_api_keys(pb::ListApiKeysRequest {
                page_size: 1000,
                page_token,
                show_inactive: args.all,
            })
            .await
            .map_err(|status| failure(&status))?
            .into_inner();
        keys.extend(page.api_keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if output == Output::Json {
        return print_json(&keys);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                key.display_name.clone(),
                key.roles.join(","),
                time(key.expire_time.as_ref()),
                time(key.last_used_time.as_ref()),
                time(key.revoke_time.as_ref()),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "ROLES", "EXPIRES", "LAST USED", "REVOKED"], &rows);
    Ok(())
}

async fn revoke(client: &mut Client, args: &RevokeArgs, output: Output) -> anyhow::Result<()> {
    let id = args.id.strip_prefix("apiKeys/").unwrap_or(&args.id);
    let key = client
        .revoke_api_key(pb::RevokeApiKeyRequest {
            name: format!("apiKeys/{id}"),
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    if output == Output::Json {
        return print_json(&key);
    }
    println!("revoked {} at {}", key.id, time(key.revoke_time.as_ref()));
    Ok(())
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    check_tenant(&args.tenant).map_err(|error| anyhow::anyhow!("--tenant: {error}"))?;
    for role in &args.roles {
        role.parse::<RoleBinding>()
            .map_err(|error| anyhow::anyhow!("--role {role}: {error}"))?;
    }
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    let key = generate_api_key(&args.tenant, &roles);
    println!("API key (shown once): {}\n", key.plaintext);
    println!("[[auth.api_keys]]");
    println!("id = {:?}", key.record.id);
    println!("sha256 = {:?}", key.record.sha256);
    println!("tenant = {:?}", key.record.tenant);
    println!("roles = {:?}", key.record.roles);
    Ok(())
}
