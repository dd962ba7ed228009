//! `flags segments`: reusable targeting conditions. A segment is JSON Logic that is true for
//! its members; rules use it as {"$ref": "<segment>"}, so changing one changes every flag that
//! refers to it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use switchyard_api::flags::v1 as pb;

use super::{Session, client::Checked as _, document, text};
use crate::output::print_json;

/// What a segment file holds, shown by `create --help` and `update --help`.
const SEGMENT_HELP: &str = "The segment file (JSON, or YAML by extension) holds the Segment \
message's fields in proto3 JSON:\n\n  description: Our own people\n  rule: {ends_with: [{var: email}, \
\"@shop.example\"]}\n\nOutput-only fields (name, version, etag) are ignored.";

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// List the project's segments.
    List,
    /// Show a segment and its rule.
    Get(SegmentArg),
    /// Create a segment from a file.
    Create(CreateArgs),
    /// Replace a segment's description and rule from a file; every rule using it follows.
    Update(UpdateArgs),
    /// Delete a segment that no rule refers to.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct SegmentArg {
    /// The segment id.
    segment: String,
}

#[derive(Debug, Args)]
#[command(after_help = SEGMENT_HELP)]
pub struct CreateArgs {
    /// The segment id: letters, digits, `.`, `_`, `-`.
    segment: String,
    /// The segment file.
    #[arg(long)]
    file: PathBuf,
    /// Recorded in the audit trail.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
#[command(after_help = SEGMENT_HELP)]
pub struct UpdateArgs {
    /// The segment id.
    segment: String,
    /// The segment file.
    #[arg(long)]
    file: PathBuf,
    /// Refuse the update if the segment is no longer at this etag. Defaults to the file's own
    /// `etag` field; without either, overwrites.
    #[arg(long)]
    etag: Option<String>,
    /// Recorded in the audit trail.
    #[arg(short, long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The segment id.
    segment: String,
    /// Recorded in the audit trail.
    #[arg(short, long, default_value = "")]
    message: String,
}

impl Session {
    /// `projects/{p}/segments/{s}`.
    fn segment(&self, id: &str) -> anyhow::Result<String> {
        Ok(format!("{}/segments/{id}", self.parent()?))
    }
}

pub async fn run(session: &mut Session, command: SegmentsCommand) -> anyhow::Result<()> {
    match command {
        SegmentsCommand::List => list(session).await,
        SegmentsCommand::Get(args) => get(session, args).await,
        SegmentsCommand::Create(args) => create(session, args).await,
        SegmentsCommand::Update(args) => update(session, args).await,
        SegmentsCommand::Delete(args) => delete(session, args).await,
    }
}

async fn segments(session: &mut Session) -> anyhow::Result<Vec<pb::Segment>> {
    let request = pb::ListSegmentsRequest {
        parent: session.parent()?,
    };
    Ok(session.client.list_segments(request).await.checked()?.segments)
}

async fn list(session: &mut Session) -> anyhow::Result<()> {
    let segments = segments(session).await?;
    if session.json() {
        return print_json(&pb::ListSegmentsResponse { segments });
    }
    if segments.is_empty() {
        println!("no segments in {}", session.parent()?);
        return Ok(());
    }
    text::print_segments(&segments);
    Ok(())
}

/// The API has no GetSegment; a project has few segments, so the list is read and searched.
async fn get(session: &mut Session, args: SegmentArg) -> anyhow::Result<()> {
    let name = session.segment(&args.segment)?;
    let Some(segment) = segments(session)
        .await?
        .into_iter()
        .find(|segment| segment.name == name)
    else {
        anyhow::bail!("NotFound: {name} not found");
    };
    if session.json() {
        return print_json(&segment);
    }
    text::print_segment(&segment);
    Ok(())
}

async fn create(session: &mut Session, args: CreateArgs) -> anyhow::Result<()> {
    let segment: pb::Segment = document::read_message(&args.file, "a segment definition")?;
    let request = pb::CreateSegmentRequest {
        parent: session.parent()?,
        segment_id: args.segment,
        segment: Some(segment),
        message: args.message,
    };
    let created = session.client.create_segment(request).await.checked()?;
    print_version(session, &created)
}

async fn update(session: &mut Session, args: UpdateArgs) -> anyhow::Result<()> {
    let mut segment: pb::Segment = document::read_message(&args.file, "a segment definition")?;
    let etag = args.etag.unwrap_or_else(|| std::mem::take(&mut segment.etag));
    segment.name = session.segment(&args.segment)?;
    let request = pb::UpdateSegmentRequest {
        segment: Some(segment),
        etag,
        message: args.message,
    };
    let updated = session.client.update_segment(request).await.checked()?;
    print_version(session, &updated)
}

async fn delete(session: &mut Session, args: DeleteArgs) -> anyhow::Result<()> {
    let request = pb::DeleteSegmentRequest {
        name: session.segment(&args.segment)?,
        message: args.message,
    };
    let empty = session.client.delete_segment(request).await.checked()?;
    if session.json() {
        return print_json(&empty);
    }
    println!("deleted segment {}", args.segment);
    Ok(())
}

fn print_version(session: &Session, segment: &pb::Segment) -> anyhow::Result<()> {
    if session.json() {
        return print_json(segment);
    }
    println!("segment {} version {}", text::key(&segment.name), segment.version);
    Ok(())
}
