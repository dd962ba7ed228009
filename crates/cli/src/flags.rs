//! `switchyard flags`: the operator's side of flag-service — define flags and segments from
//! files, switch a flag per environment, pull the kill switch, read a flag's history, compare
//! and roll back versions, move an environment's flags as a flagd document, evaluate flags as a
//! caller would, and read the audit trail. Everything goes through the public gRPC API, so the
//! CLI can do nothing a caller's key could not.

mod client;
mod document;
mod evaluate;
mod segments;
mod text;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use switchyard_api::flags::v1 as pb;
use tonic::Code;

use crate::output::{Output, print_json, read};
use client::{Checked as _, Client, Key};

/// The most a list RPC returns per page; asking for it keeps round trips few.
const MAX_PAGE: i32 = 500;

#[derive(Debug, Args)]
pub struct FlagsArgs {
    /// flag-service's gRPC address.
    #[arg(long, global = true, env = "SY_FLAG_SERVER", default_value = "http://127.0.0.1:9016")]
    server: String,
    /// API key sent as `authorization: Bearer …`; defaults to ./data/admin-api-key, which
    /// `switchyard dev` writes. `evaluate` and `evaluate-all` need one only for managed
    /// flags (an SDK key is enough).
    #[arg(long, global = true, env = "SY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The project id to work in.
    #[arg(long, global = true, env = "SY_PROJECT")]
    project: Option<String>,
    /// How to print results: text for people, json for the API's messages as proto3 JSON.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: FlagsCommand,
}

#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// List the project's flags (every page), optionally only those with a tag or lifecycle.
    List(ListArgs),
    /// Show a flag: its fields, variants and the rules of each environment.
    Get(FlagArg),
    /// Create a flag from a definition file (see `create --help` for its fields).
    Create(CreateArgs),
    /// Replace a flag's definition from a file; with an etag, a flag changed meanwhile is
    /// refused instead of overwritten.
    Update(UpdateArgs),
    /// Change a flag's rules in one environment: enable or disable it, its default variant,
    /// its targeting. Fails rather than overwrites when the flag changes meanwhile.
    Set(SetArgs),
    /// The kill switch: disable a flag in the given environments (`--env`, repeatable) or in
    /// every one (`--all`); callers get their own defaults within the propagation delay.
    Kill(KillArgs),
    /// List a flag's versions, newest first.
    History(HistoryArgs),
    /// Show what changed between two versions of a flag, by JSON path.
    Diff(DiffArgs),
    /// Make a new version of a flag equal to an earlier one.
    Rollback(RollbackArgs),
    /// Reusable targeting conditions, used in rules as {"$ref": "<segment>"}.
    #[command(subcommand)]
    Segments(segments::SegmentsCommand),
    /// Write an environment's flags as the flagd document flag-service serves for it.
    Export(ExportArgs),
    /// Take a flagd document's flags (and its $evaluators as segments) into an environment,
    /// all or nothing.
    Import(ImportArgs),
    /// Evaluate one flag for a context as a caller would: value, variant and reason. Exits 1
    /// when the evaluation fails (such as an unknown flag).
    Evaluate(evaluate::EvaluateArgs),
    /// Evaluate every flag of a selection for a context.
    EvaluateAll(evaluate::EvaluateAllArgs),
    /// The tenant's audit trail of flag and segment changes, newest first (needs the admin
    /// role).
    Audit(AuditArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LifecycleArg {
    Active,
    Deprecated,
    Archived,
}

impl LifecycleArg {
    fn proto(self) -> pb::Lifecycle {
        match self {
            LifecycleArg::Active => pb::Lifecycle::Active,
            LifecycleArg::Deprecated => pb::Lifecycle::Deprecated,
            LifecycleArg::Archived => pb::Lifecycle::Archived,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only flags with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only flags in this lifecycle.
    #[arg(long, value_enum)]
    lifecycle: Option<LifecycleArg>,
}

#[derive(Debug, Args)]
pub struct FlagArg {
    /// The flag key.
    flag: String,
}

/// What a definition file holds, shown by `create --help` and `update --help`.
const DEFINITION_HELP: &str = "The definition file (JSON, or YAML by extension) holds the Flag \
message's fields in proto3 JSON:\n\n  description: New checkout flow\n  owner: team-checkout\n  \
tags: [checkout]\n  lifecycle: LIFECYCLE_ACTIVE        # or LIFECYCLE_DEPRECATED, LIFECYCLE_ARCHIVED\n  \
variants: {new: true, old: false}  # one type for all values\n  environments:\n    prod:\n      \
enabled: true\n      defaultVariant: old\n      targeting: {if: [{$ref: staff}, new, old]}\n      \
prerequisites: [{flag: new-cart, variants: [on]}]\n  metadata: {team: checkout}\n\nOutput-only fields (name, version, etag, times) are ignored, so the \
output of `get --output json` can be edited and passed back.";

#[derive(Debug, Args)]
#[command(after_help = DEFINITION_HELP)]
pub struct CreateArgs {
    /// The flag key: letters, digits, `.`, `_`, `-`.
    flag: String,
    /// The definition file.
    #[arg(long)]
    file: PathBuf,
    /// Recorded in the flag's history.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
#[command(after_help = DEFINITION_HELP)]
pub struct UpdateArgs {
    /// The flag key.
    flag: String,
    /// The new definition; it replaces the whole flag.
    #[arg(long)]
    file: PathBuf,
    /// Refuse the update if the flag is no longer at this etag. Defaults to the file's own
    /// `etag` field (as `get --output json` writes it); without either, overwrites.
    #[arg(long)]
    etag: Option<String>,
    /// Recorded in the flag's history.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["enable", "disable", "default_variant", "targeting_file"])
))]
pub struct SetArgs {
    /// The flag key.
    flag: String,
    /// The environment id; its rules are created when the flag has none there yet.
    #[arg(long)]
    env: String,
    /// Serve the flag in the environment.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Give every caller its own default in the environment.
    #[arg(long)]
    disable: bool,
    /// The variant served when targeting chooses none; "" serves each caller's own default.
    #[arg(long)]
    default_variant: Option<String>,
    /// JSON Logic targeting (JSON or YAML file) returning a variant name; replaces the current.
    #[arg(long)]
    targeting_file: Option<PathBuf>,
    /// Recorded in the flag's history.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The flag key.
    flag: String,
    /// An environment id to disable the flag in; repeatable.
    #[arg(long = "env", required_unless_present = "all", conflicts_with = "all")]
    envs: Vec<String>,
    /// Disable the flag in every environment.
    #[arg(long)]
    all: bool,
    /// Recorded in the flag's history, such as the incident.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The flag key.
    flag: String,
    /// At most this many versions.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The flag key.
    flag: String,
    /// The earlier version number.
    from: i64,
    /// The later version number.
    to: i64,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The flag key.
    flag: String,
    /// The version to return to.
    version: i64,
    /// Recorded in the flag's history.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The environment id.
    #[arg(long)]
    env: String,
    /// Write the document here instead of to stdout.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The environment id to import into.
    #[arg(long)]
    env: String,
    /// A flagd flag document (JSON or YAML), such as one `export` wrote.
    file: PathBuf,
    /// Recorded in the history of every flag imported.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records of resources under this name, such as `projects/shop/flags/banner`.
    #[arg(long)]
    resource: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// A connected client and the options every command shares.
struct Session {
    client: Client,
    project: Option<String>,
    output: Output,
}

impl Session {
    fn project(&self) -> anyhow::Result<&str> {
        self.project
            .as_deref()
            .context("no project: pass --project or set SY_PROJECT")
    }

    /// `projects/{p}`.
    fn parent(&self) -> anyhow::Result<String> {
        Ok(format!("projects/{}", self.project()?))
    }

    /// `projects/{p}/flags/{f}`.
    fn flag(&self, key: &str) -> anyhow::Result<String> {
        Ok(format!("{}/flags/{key}", self.parent()?))
    }

    /// `projects/{p}/environments/{e}`: also the selector of the environment's flags.
    fn environment(&self, env: &str) -> anyhow::Result<String> {
        Ok(format!("{}/environments/{env}", self.parent()?))
    }

    fn json(&self) -> bool {
        self.output == Output::Json
    }
}

pub async fn run(args: FlagsArgs) -> anyhow::Result<()> {
    let key = match args.command {
        FlagsCommand::Evaluate(_) | FlagsCommand::EvaluateAll(_) => Key::IfAny,
        _ => Key::Required,
    };
    let mut session = Session {
        client: client::connect(&args.server, args.api_key.as_deref(), key)?,
        project: args.project,
        output: args.output,
    };
    let session = &mut session;
    match args.command {
        FlagsCommand::List(args) => list(session, args).await,
        FlagsCommand::Get(args) => get(session, args).await,
        FlagsCommand::Create(args) => create(session, args).await,
        FlagsCommand::Update(args) => update(session, args).await,
        FlagsCommand::Set(args) => set(session, args).await,
        FlagsCommand::Kill(args) => kill(session, args).await,
        FlagsCommand::History(args) => history(session, args).await,
        FlagsCommand::Diff(args) => diff(session, args).await,
        FlagsCommand::Rollback(args) => rollback(session, args).await,
        FlagsCommand::Segments(command) => segments::run(session, command).await,
        FlagsCommand::Export(args) => export(session, args).await,
        FlagsCommand::Import(args) => import(session, args).await,
        FlagsCommand::Evaluate(args) => evaluate::one(session, args).await,
        FlagsCommand::EvaluateAll(args) => evaluate::all(session, args).await,
        FlagsCommand::Audit(args) => audit(session, args).await,
    }
}

async fn list(session: &mut Session, args: ListArgs) -> anyhow::Result<()> {
    let mut request = pb::ListFlagsRequest {
        parent: session.parent()?,
        page_size: MAX_PAGE,
        page_token: String::new(),
        tag: args.tag.unwrap_or_default(),
        lifecycle: args.lifecycle.map_or(0, |lifecycle| lifecycle.proto() as i32),
    };
    let mut flags = Vec::new();
    loop {
        let page = session.client.list_flags(request.clone()).await.checked()?;
        flags.extend(page.flags);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if session.json() {
        return print_json(&pb::ListFlagsResponse {
            flags,
            next_page_token: String::new(),
        });
    }
    if flags.is_empty() {
        println!("no flags in {}", request.parent);
        return Ok(());
    }
    text::print_flags(&flags);
    Ok(())
}

async fn get(session: &mut Session, args: FlagArg) -> anyhow::Result<()> {
    let request = pb::GetFlagRequest {
        name: session.flag(&args.flag)?,
    };
    let flag = session.client.get_flag(request).await.checked()?;
    if session.json() {
        return print_json(&flag);
    }
    text::print_flag(&flag);
    Ok(())
}

async fn create(session: &mut Session, args: CreateArgs) -> anyhow::Result<()> {
    let flag: pb::Flag = document::read_message(&args.file, "a flag definition")?;
    let request = pb::CreateFlagRequest {
        parent: session.parent()?,
        flag_id: args.flag,
        flag: Some(flag),
        message: args.message,
    };
    let created = session.client.create_flag(request).await.checked()?;
    print_version(session, &created)
}

async fn update(session: &mut Session, args: UpdateArgs) -> anyhow::Result<()> {
    let mut flag: pb::Flag = document::read_message(&args.file, "a flag definition")?;
    let etag = args.etag.unwrap_or_else(|| std::mem::take(&mut flag.etag));
    flag.name = session.flag(&args.flag)?;
    let request = pb::UpdateFlagRequest {
        flag: Some(flag),
        etag,
        message: args.message,
    };
    let updated = session.client.update_flag(request).await.checked()?;
    print_version(session, &updated)
}

/// Read, change one environment, write back with the etag read: a change made by someone else
/// in between is refused by the service (ABORTED) instead of being overwritten.
async fn set(session: &mut Session, args: SetArgs) -> anyhow::Result<()> {
    // The file first: a bad one should fail before anything is read, keeping the window short.
    let targeting = args
        .targeting_file
        .as_deref()
        .map(|path| document::read_object(path, "targeting"))
        .transpose()?;
    let name = session.flag(&args.flag)?;
    let mut flag = session.client.get_flag(pb::GetFlagRequest { name }).await.checked()?;
    change_rules(flag.environments.entry(args.env.clone()).or_default(), &args, targeting);
    let request = pb::UpdateFlagRequest {
        etag: std::mem::take(&mut flag.etag),
        flag: Some(flag),
        message: args.message,
    };
    let updated = match session.client.update_flag(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == Code::Aborted => {
            return Err(client::failure(&status).context(format!(
                "{} changed while this command ran; nothing was overwritten, run it again",
                args.flag
            )));
        }
        Err(status) => return Err(client::failure(&status)),
    };
    if session.json() {
        return print_json(&updated);
    }
    let rules = updated.environments.get(&args.env).cloned().unwrap_or_default();
    println!(
        "{} version {}: {} {}",
        args.flag,
        updated.version,
        args.env,
        text::rules(&rules)
    );
    Ok(())
}

/// Applies what `set` was told to change; everything else stays as read.
fn change_rules(rules: &mut pb::EnvironmentRules, args: &SetArgs, targeting: Option<pbjson_types::Struct>) {
    if args.enable {
        rules.enabled = true;
    }
    if args.disable {
        rules.enabled = false;
    }
    if let Some(variant) = &args.default_variant {
        rules.default_variant.clone_from(variant);
    }
    if targeting.is_some() {
        rules.targeting = targeting;
    }
}

async fn kill(session: &mut Session, args: KillArgs) -> anyhow::Result<()> {
    let request = pb::KillFlagRequest {
        name: session.flag(&args.flag)?,
        environments: args.envs.clone(),
        message: args.message,
        all: args.all,
    };
    let killed = session.client.kill_flag(request).await.checked()?;
    if session.json() {
        return print_json(&killed);
    }
    let environments = if args.envs.is_empty() {
        "every environment".to_owned()
    } else {
        args.envs.join(", ")
    };
    println!("{} version {}: killed in {environments}", args.flag, killed.version);
    Ok(())
}

async fn history(session: &mut Session, args: HistoryArgs) -> anyhow::Result<()> {
    let limit = args.limit.max(1);
    let mut request = pb::ListFlagVersionsRequest {
        name: session.flag(&args.flag)?,
        page_size: page_size(limit),
        page_token: String::new(),
    };
    let mut versions = Vec::new();
    while versions.len() < limit {
        let page = session.client.list_flag_versions(request.clone()).await.checked()?;
        versions.extend(page.versions);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    versions.truncate(limit);
    if session.json() {
        return print_json(&pb::ListFlagVersionsResponse {
            versions,
            next_page_token: String::new(),
        });
    }
    text::print_versions(&versions);
    Ok(())
}

/// The page size to ask for when `limit` items are wanted.
fn page_size(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
}

async fn diff(session: &mut Session, args: DiffArgs) -> anyhow::Result<()> {
    let request = pb::DiffFlagVersionsRequest {
        name: session.flag(&args.flag)?,
        from_version: args.from,
        to_version: args.to,
    };
    let response = session.client.diff_flag_versions(request).await.checked()?;
    if session.json() {
        return print_json(&response);
    }
    text::print_changes(&response.changes);
    Ok(())
}

async fn rollback(session: &mut Session, args: RollbackArgs) -> anyhow::Result<()> {
    let request = pb::RollbackFlagRequest {
        name: session.flag(&args.flag)?,
        version: args.version,
        message: args.message,
    };
    let flag = session.client.rollback_flag(request).await.checked()?;
    print_version(session, &flag)
}

/// After a change: the flag as proto3 JSON, or `key version N`.
fn print_version(session: &Session, flag: &pb::Flag) -> anyhow::Result<()> {
    if session.json() {
        return print_json(flag);
    }
    println!("{} version {}", text::key(&flag.name), flag.version);
    Ok(())
}

/// Writes the document itself in either output format: it is JSON already, and wrapping it in
/// the response message would only escape it into a string.
async fn export(session: &mut Session, args: ExportArgs) -> anyhow::Result<()> {
    let request = pb::ExportFlagsRequest {
        parent: session.environment(&args.env)?,
    };
    let document = session.client.export_flags(request).await.checked()?.document;
    let text = document.trim_end().to_owned() + "\n";
    let Some(path) = args.out else {
        print!("{text}");
        return Ok(());
    };
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

async fn import(session: &mut Session, args: ImportArgs) -> anyhow::Result<()> {
    let parent = session.environment(&args.env)?;
    let request = pb::ImportFlagsRequest {
        parent: parent.clone(),
        document: read(&args.file)?,
        message: args.message,
    };
    let response = session.client.import_flags(request).await.checked()?;
    if session.json() {
        return print_json(&response);
    }
    println!("imported {} flag(s) into {parent}", response.imported);
    Ok(())
}

async fn audit(session: &mut Session, args: AuditArgs) -> anyhow::Result<()> {
    let limit = args.limit.max(1);
    let mut request = pb::ListAuditRecordsRequest {
        resource_prefix: args.resource.unwrap_or_default(),
        page_size: page_size(limit),
        page_token: String::new(),
    };
    let mut records = Vec::new();
    while records.len() < limit {
        let page = session.client.list_audit_records(request.clone()).await.checked()?;
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    records.truncate(limit);
    if session.json() {
        return print_json(&pb::ListAuditRecordsResponse {
            records,
            next_page_token: String::new(),
        });
    }
    text::print_audit(&records);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_stay_within_what_the_service_accepts() {
        assert_eq!(page_size(0), 1);
        assert_eq!(page_size(20), 20);
        assert_eq!(page_size(100_000), MAX_PAGE);
    }
}
