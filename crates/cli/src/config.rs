//! `switchyard config`: the operator's side of config-service — edit a draft from a file,
//! validate and publish it, compare and roll back releases, promote along the pipeline,
//! follow changes live, back projects up, and render a config for Kubernetes. Everything goes
//! through the public gRPC API, so the CLI can do nothing a caller's key could not.

pub mod client;
mod k8s;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use switchyard_api::config::v1 as pb;
use tonic::Code;

use crate::output::{Output, compact, print_json, read, time};
use client::{Checked as _, Client};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    server: client::ServerArgs,
    /// The project id to work in.
    #[arg(long, global = true, env = "SY_PROJECT")]
    project: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the published configuration of an environment (resolved, or the raw text).
    Get(GetArgs),
    /// Create or update a config's draft from a file; prints the new draft etag.
    Set(SetArgs),
    /// Check the draft (or a candidate file) against the schema and rules; exits 1 when invalid.
    Validate(ValidateArgs),
    /// Publish the draft to an environment as a new release.
    Publish(PublishArgs),
    /// Show what changed between two releases: each side is `env` (its current release) or
    /// `env@N` (release N).
    Diff(DiffArgs),
    /// List a config's releases in an environment, newest first.
    History(HistoryArgs),
    /// Publish an earlier release's content again, as a new release.
    Rollback(RollbackArgs),
    /// Publish a release's content to the next environment of the pipeline.
    Promote(PromoteArgs),
    /// Follow an environment's changes, one line per change; reconnects without losing any.
    Watch(WatchArgs),
    /// Write the whole project (environments, drafts, every release) as a JSON archive.
    Export(ExportArgs),
    /// Create a project from a JSON archive made by `export`.
    Import(ImportArgs),
    /// Render a published config as a Kubernetes ConfigMap, plus a Secret for its secret values.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The config id.
    config: String,
    /// The environment id.
    #[arg(long)]
    env: String,
    /// The config's own published text instead of the resolved document.
    #[arg(long)]
    raw: bool,
    /// Show secret values in clear (needs the admin role or the `secrets:reveal` scope).
    #[arg(long)]
    reveal: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The config id; created when it does not exist yet.
    config: String,
    /// The draft document.
    #[arg(long)]
    file: PathBuf,
    /// The document's format; guessed from the file extension when omitted.
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// A JSON Schema file. When updating and omitted, the current schema is kept.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Base configs to merge under this one, lowest priority first. Kept when omitted.
    #[arg(long, value_delimiter = ',')]
    extends: Option<Vec<String>>,
    /// A `key=value` label; repeatable. Given ones replace all labels; none keeps them.
    #[arg(long = "label", value_parser = key_value)]
    labels: Vec<(String, String)>,
    /// An `env=path` overlay file merged over the document in that environment; repeatable.
    /// Given ones replace all overlays; none keeps them.
    #[arg(long = "overlay", value_parser = key_value)]
    overlays: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config id.
    config: String,
    /// The environment to resolve for; the pipeline's first when omitted.
    #[arg(long)]
    env: Option<String>,
    /// A candidate document to check instead of the stored draft.
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The config id.
    config: String,
    /// The environment id to publish to.
    #[arg(long)]
    env: String,
    /// The release message.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// `env` or `env@N`.
    from: String,
    /// `env` or `env@N`.
    to: String,
    /// The config id.
    #[arg(long)]
    config: String,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The config id.
    config: String,
    /// The environment id.
    #[arg(long)]
    env: String,
    /// At most this many releases.
    #[arg(long, default_value_t = 20)]
    limit: i32,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The config id.
    config: String,
    /// The environment id.
    #[arg(long)]
    env: String,
    /// The release number whose content to publish again.
    #[arg(long)]
    to: u64,
    /// The release message.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The config id.
    config: String,
    /// The environment the release is in; it goes to the next one.
    #[arg(long)]
    env: String,
    /// The release number to promote.
    #[arg(long)]
    release: u64,
    /// The release message.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The environment id.
    #[arg(long)]
    env: String,
    /// The last revision already seen; 0 (the default) starts with a snapshot.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Only this config id; repeatable. All configs when omitted.
    #[arg(long = "config")]
    configs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the archive here instead of to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive written by `export`.
    #[arg(long)]
    file: PathBuf,
    /// The new project's id; the archive's when omitted.
    #[arg(long = "as")]
    as_project: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The config id.
    config: String,
    /// The environment id.
    #[arg(long)]
    env: String,
    /// Render Kubernetes manifests (the only target so far).
    #[arg(long, required = true)]
    k8s: bool,
    /// The ConfigMap and Secret name; the config id when omitted.
    #[arg(long)]
    name: Option<String>,
    /// The namespace to put in the manifests.
    #[arg(long)]
    namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FileFormat {
    Json,
    Yaml,
    Toml,
    Properties,
    Text,
}

impl FileFormat {
    fn guess(path: &Path) -> anyhow::Result<Self> {
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match extension.as_deref() {
            Some("json") => FileFormat::Json,
            Some("yaml" | "yml") => FileFormat::Yaml,
            Some("toml") => FileFormat::Toml,
            Some("properties") => FileFormat::Properties,
            Some("txt" | "text") => FileFormat::Text,
            _ => anyhow::bail!(
                "cannot tell the format of {} from its extension; pass --format",
                path.display()
            ),
        })
    }

    fn proto(self) -> pb::Format {
        match self {
            FileFormat::Json => pb::Format::Json,
            FileFormat::Yaml => pb::Format::Yaml,
            FileFormat::Toml => pb::Format::Toml,
            FileFormat::Properties => pb::Format::Properties,
            FileFormat::Text => pb::Format::Text,
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got `{text}`")),
    }
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

    /// `projects/{p}/configs/{c}`: the draft.
    fn draft(&self, config: &str) -> anyhow::Result<String> {
        Ok(format!("projects/{}/configs/{config}", self.project()?))
    }

    /// `projects/{p}/environments/{e}`.
    fn environment(&self, env: &str) -> anyhow::Result<String> {
        Ok(format!("projects/{}/environments/{env}", self.project()?))
    }

    /// `projects/{p}/environments/{e}/configs/{c}`: what the environment serves.
    fn published(&self, env: &str, config: &str) -> anyhow::Result<String> {
        Ok(format!("{}/configs/{config}", self.environment(env)?))
    }

    fn json(&self) -> bool {
        self.output == Output::Json
    }
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let mut session = Session {
        client: client::connect(&args.server)?,
        project: args.project,
        output: args.output,
    };
    let session = &mut session;
    match args.command {
        ConfigCommand::Get(args) => get(session, args).await,
        ConfigCommand::Set(args) => set(session, args).await,
        ConfigCommand::Validate(args) => validate(session, args).await,
        ConfigCommand::Publish(args) => publish(session, args).await,
        ConfigCommand::Diff(args) => diff(session, args).await,
        ConfigCommand::History(args) => history(session, args).await,
        ConfigCommand::Rollback(args) => rollback(session, args).await,
        ConfigCommand::Promote(args) => promote(session, args).await,
        ConfigCommand::Watch(args) => watch(session, args).await,
        ConfigCommand::Export(args) => export(session, args).await,
        ConfigCommand::Import(args) => import(session, args).await,
        ConfigCommand::Render(args) => render(session, args).await,
    }
}

async fn get(session: &mut Session, args: GetArgs) -> anyhow::Result<()> {
    let view = if args.raw { pb::View::Raw } else { pb::View::Resolved };
    let request = pb::GetConfigRequest {
        name: session.published(&args.env, &args.config)?,
        view: view as i32,
        reveal_secrets: args.reveal,
        ..Default::default()
    };
    let resolved = session.client.get_config(request).await.checked()?;
    if session.json() {
        return print_json(&resolved);
    }
    if args.raw {
        println!("{}", resolved.text.trim_end_matches('\n'));
        return Ok(());
    }
    match serde_json::from_str::<serde_json::Value>(&resolved.text) {
        Ok(document) => println!("{}", serde_json::to_string_pretty(&document)?),
        Err(_) => println!("{}", resolved.text),
    }
    Ok(())
}

async fn set(session: &mut Session, args: SetArgs) -> anyhow::Result<()> {
    let name = session.draft(&args.config)?;
    let format = match args.format {
        Some(format) => format,
        None => FileFormat::guess(&args.file)?,
    };
    let mut overlays = HashMap::new();
    for (environment, path) in &args.overlays {
        overlays.insert(environment.clone(), read(Path::new(path))?);
    }
    let wanted = pb::Config {
        name: name.clone(),
        format: format.proto() as i32,
        content: read(&args.file)?,
        overlays,
        extends: args.extends.clone().unwrap_or_default(),
        schema: args.schema.as_deref().map(read).transpose()?.unwrap_or_default(),
        labels: args.labels.iter().cloned().collect(),
        ..Default::default()
    };
    let current = match session
        .client
        .get_config_draft(pb::GetConfigDraftRequest { name })
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == Code::NotFound => return create(session, &args.config, wanted).await,
        Err(status) => return Err(client::failure(&status)),
    };
    let config = keep_unset(&args, wanted, current)?;
    let updated = session
        .client
        .update_config(pb::UpdateConfigRequest { config: Some(config) })
        .await
        .checked()?;
    print_draft(session, &updated)
}

/// The update: what the options name replaces, what they leave out stays as it is.
fn keep_unset(args: &SetArgs, mut wanted: pb::Config, current: pb::Config) -> anyhow::Result<pb::Config> {
    if args.overlays.is_empty() && !current.overlays.is_empty() && !current.secret_paths.is_empty() {
        anyhow::bail!(
            "{} has overlays and secrets, and overlays are read back masked: pass every --overlay again",
            current.name
        );
    }
    if args.overlays.is_empty() {
        wanted.overlays = current.overlays;
    }
    if args.schema.is_none() {
        wanted.schema = current.schema;
    }
    if args.extends.is_none() {
        wanted.extends = current.extends;
    }
    if args.labels.is_empty() {
        wanted.labels = current.labels;
    }
    wanted.rules = current.rules;
    wanted.etag = current.etag;
    Ok(wanted)
}

async fn create(session: &mut Session, id: &str, config: pb::Config) -> anyhow::Result<()> {
    let request = pb::CreateConfigRequest {
        parent: format!("projects/{}", session.project()?),
        config_id: id.to_owned(),
        config: Some(pb::Config {
            name: String::new(),
            ..config
        }),
    };
    let created = session.client.create_config(request).await.checked()?;
    print_draft(session, &created)
}

fn print_draft(session: &Session, config: &pb::Config) -> anyhow::Result<()> {
    if session.json() {
        return print_json(config);
    }
    println!("{}", config.etag);
    Ok(())
}

async fn validate(session: &mut Session, args: ValidateArgs) -> anyhow::Result<()> {
    let request = pb::ValidateConfigRequest {
        name: session.draft(&args.config)?,
        environment: args.env.unwrap_or_default(),
        content: args.file.as_deref().map(read).transpose()?,
    };
    let response = session.client.validate_config(request).await.checked()?;
    if session.json() {
        print_json(&response)?;
    } else if response.valid {
        println!("valid");
    }
    if response.valid {
        return Ok(());
    }
    if !session.json() {
        for violation in &response.violations {
            println!("{}: {} [{}]", violation.path, violation.message, violation.source);
        }
    }
    anyhow::bail!("{} is invalid: {} violation(s)", args.config, response.violations.len())
}

async fn publish(session: &mut Session, args: PublishArgs) -> anyhow::Result<()> {
    let request = pb::PublishConfigRequest {
        name: session.draft(&args.config)?,
        environment: args.env,
        message: args.message,
        etag: String::new(),
    };
    let release = session.client.publish_config(request).await.checked()?;
    print_release(session, &release)
}

async fn rollback(session: &mut Session, args: RollbackArgs) -> anyhow::Result<()> {
    let request = pb::RollbackConfigRequest {
        name: session.published(&args.env, &args.config)?,
        release: args.to,
        message: args.message,
    };
    let release = session.client.rollback_config(request).await.checked()?;
    print_release(session, &release)
}

async fn promote(session: &mut Session, args: PromoteArgs) -> anyhow::Result<()> {
    let request = pb::PromoteReleaseRequest {
        name: format!(
            "{}/releases/{}",
            session.published(&args.env, &args.config)?,
            args.release
        ),
        message: args.message,
    };
    let release = session.client.promote_release(request).await.checked()?;
    print_release(session, &release)
}

fn print_release(session: &Session, release: &pb::Release) -> anyhow::Result<()> {
    if session.json() {
        return print_json(release);
    }
    println!("release {} {} {}", release.number, release.name, release.content_hash);
    Ok(())
}

async fn diff(session: &mut Session, args: DiffArgs) -> anyhow::Result<()> {
    let request = pb::DiffReleasesRequest {
        from: diff_side(session, &args.config, &args.from)?,
        to: diff_side(session, &args.config, &args.to)?,
    };
    let response = session.client.diff_releases(request).await.checked()?;
    if session.json() {
        return print_json(&response);
    }
    if response.changes.is_empty() {
        println!("no changes");
    }
    for change in &response.changes {
        let before = change.before.as_ref().map(compact).unwrap_or_default();
        let after = change.after.as_ref().map(compact).unwrap_or_default();
        match change.kind.as_str() {
            "added" => println!("+ {}: {after}", change.path),
            "removed" => println!("- {}: {before}", change.path),
            _ => println!("~ {}: {before} -> {after}", change.path),
        }
    }
    Ok(())
}

/// `env` (its current release of `config`) or `env@N` (release N) as a resource name.
fn diff_side(session: &Session, config: &str, side: &str) -> anyhow::Result<String> {
    let Some((env, number)) = side.split_once('@') else {
        return session.published(side, config);
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("`{side}`: expected env@N with N a release number"))?;
    Ok(format!("{}/releases/{number}", session.published(env, config)?))
}

async fn history(session: &mut Session, args: HistoryArgs) -> anyhow::Result<()> {
    let request = pb::ListReleasesRequest {
        parent: session.published(&args.env, &args.config)?,
        page_size: args.limit.max(1),
        page_token: String::new(),
    };
    let response = session.client.list_releases(request).await.checked()?;
    if session.json() {
        return print_json(&response);
    }
    for release in &response.releases {
        let hash: String = release.content_hash.chars().take(12).collect();
        println!(
            "{:>4}  {}  {}  {hash}  {}",
            release.number,
            time(release.create_time.as_ref()),
            release.author,
            release.message
        );
    }
    Ok(())
}

/// The first retry waits this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

async fn watch(session: &mut Session, args: WatchArgs) -> anyhow::Result<()> {
    let mut request = pb::WatchRequest {
        parent: session.environment(&args.env)?,
        since_revision: args.since,
        configs: args.configs,
        ..Default::default()
    };
    let mut backoff = FIRST_BACKOFF;
    // One future for the whole watch, so a Ctrl-C between two waits is not missed.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let ended = tokio::select! {
            ended = follow(session, &mut request, &mut backoff) => ended,
            _ = &mut interrupted => return Ok(()),
        };
        let reason = match ended {
            Ok(()) => "the server closed the stream".to_owned(),
            Err(status) if status.code() == Code::Unavailable => status.message().to_owned(),
            Err(status) => return Err(client::failure(&status)),
        };
        eprintln!(
            "watch: {reason}; resuming after revision {} in {backoff:?}",
            request.since_revision
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = &mut interrupted => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Prints responses until the stream ends, keeping `since_revision` at the last one printed.
async fn follow(
    session: &mut Session,
    request: &mut pb::WatchRequest,
    backoff: &mut Duration,
) -> Result<(), tonic::Status> {
    let mut stream = session.client.watch(request.clone()).await?.into_inner();
    while let Some(response) = stream.message().await? {
        request.since_revision = response.revision;
        *backoff = FIRST_BACKOFF;
        print_watch(session.output, &response);
    }
    Ok(())
}

fn print_watch(output: Output, response: &pb::WatchResponse) {
    if output == Output::Json {
        println!("{}", serde_json::to_string(response).unwrap_or_default());
        return;
    }
    let kind = if response.snapshot { "snapshot" } else { "change" };
    let configs: Vec<String> = response
        .configs
        .iter()
        .map(|config| {
            let id = config.name.rsplit('/').next().unwrap_or(&config.name);
            let etag = if config.deleted { "deleted" } else { &config.etag };
            format!("{id}@{} {etag}", config.release)
        })
        .collect();
    println!("revision {} {kind} {}", response.revision, configs.join(", "));
}

async fn export(session: &mut Session, args: ExportArgs) -> anyhow::Result<()> {
    let request = pb::ExportProjectRequest {
        name: format!("projects/{}", session.project()?),
    };
    let archive = session.client.export_project(request).await.checked()?;
    let text = serde_json::to_string_pretty(&archive)?;
    let Some(path) = args.out else {
        println!("{text}");
        return Ok(());
    };
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

async fn import(session: &mut Session, args: ImportArgs) -> anyhow::Result<()> {
    let archive: pb::ProjectArchive = serde_json::from_str(&read(&args.file)?)
        .with_context(|| format!("{} is not a project archive", args.file.display()))?;
    let request = pb::ImportProjectRequest {
        archive: Some(archive),
        project_id: args.as_project.unwrap_or_default(),
    };
    let project = session.client.import_project(request).await.checked()?;
    if session.json() {
        return print_json(&project);
    }
    println!("imported {}", project.name);
    Ok(())
}

async fn render(session: &mut Session, args: RenderArgs) -> anyhow::Result<()> {
    let request = pb::GetConfigRequest {
        name: session.published(&args.env, &args.config)?,
        view: pb::View::Resolved as i32,
        reveal_secrets: true,
        ..Default::default()
    };
    let resolved = session.client.get_config(request).await.checked()?;
    let document = serde_json::from_str(&resolved.text).context("the resolved document is not JSON")?;
    let target = k8s::Target {
        config: &args.config,
        name: args.name.as_deref().unwrap_or(&args.config),
        namespace: args.namespace.as_deref(),
        release: resolved.release,
        etag: &resolved.etag,
    };
    print!("{}", k8s::render(&target, document, &resolved.secret_paths)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formats_are_guessed_from_the_extension() {
        assert_eq!(FileFormat::guess(Path::new("a/app.YML")).unwrap(), FileFormat::Yaml);
        assert_eq!(
            FileFormat::guess(Path::new("app.properties")).unwrap(),
            FileFormat::Properties
        );
        assert!(FileFormat::guess(Path::new("app")).is_err());
    }

    #[test]
    fn key_values_need_an_equals_sign() {
        assert_eq!(key_value("a=b=c").unwrap(), ("a".to_owned(), "b=c".to_owned()));
        assert!(key_value("ab").is_err());
        assert!(key_value("=b").is_err());
    }
}
