//! `switchyard token`: a client JWT for the realtime gateway, signed with the HS256 secret
//! the services share (`auth.jwt_hs256_secret`; `switchyard dev` keeps one in
//! `data/jwt-hs256-secret`). For trying private channels, `$config` and `$flags` by hand and
//! for tests; production clients get their tokens from the application's own backend.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use switchyard_platform::{auth::check_tenant, settings::parse_duration};

/// Where `switchyard dev` keeps its secret, relative to the working directory.
const DEV_SECRET_FILE: &str = "data/jwt-hs256-secret";

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user the token is for (`sub`); `user#<id>` channels are theirs.
    #[arg(long)]
    user: String,
    /// A channel the user may subscribe to: an exact name (`user#42`, `orders:7`) or a prefix
    /// ending in `*` (`$config:shop:*`). Repeatable.
    #[arg(long = "channel", required = true)]
    channels: Vec<String>,
    /// How long the token works: `1h`, `30m`, `7d`.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// The tenant whose channels the token opens.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The HS256 secret; defaults to ./data/jwt-hs256-secret, which `switchyard dev` writes.
    #[arg(long, env = "SY_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
}

#[derive(Debug, Serialize)]
struct ConnectionClaims<'a> {
    sub: &'a str,
    exp: u64,
    iat: u64,
    tenant: &'a str,
    channels: &'a [String],
}

pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    println!("{}", token(args)?);
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    anyhow::ensure!(!args.user.trim().is_empty(), "--user must not be empty");
    check_tenant(&args.tenant).map_err(|error| anyhow::anyhow!("--tenant: {error}"))?;
    let ttl = parse_duration(&args.ttl)
        .filter(|ttl| !ttl.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--ttl {}: expected a duration such as 1h, 30m or 7d", args.ttl))?;
    let secret = match &args.secret {
        Some(secret) => secret.trim().to_owned(),
        None => std::fs::read_to_string(DEV_SECRET_FILE)
            .map(|text| text.trim().to_owned())
            .with_context(|| {
                format!("no secret: pass --secret, set SY_JWT_SECRET, or run this where `switchyard dev` wrote ./{DEV_SECRET_FILE}")
            })?,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = ConnectionClaims {
        sub: &args.user,
        exp: now + ttl.as_secs().max(1),
        iat: now,
        tenant: &args.tenant,
        channels: &args.channels,
    };
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
