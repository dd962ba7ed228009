//! `switchyard keys`: API keys are shown once and stored only as hashes, so generating one
//! prints the key for the caller and the record for the settings file.

use clap::{Args, Subcommand};
use switchyard_platform::auth::{RoleBinding, check_tenant, generate_api_key};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an API key; prints the key once and the `[[auth.api_keys]]` entry to add
    /// to switchyard.toml.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The tenant the key acts for.
    #[arg(long)]
    tenant: String,
    /// Role bindings: `viewer`, `editor`, `publisher`, `admin`, optionally scoped with
    /// `:resource` (for example `editor:projects/shop`). Repeatable.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate(args) => generate(&args),
    }
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
