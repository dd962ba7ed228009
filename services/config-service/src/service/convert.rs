//! Protobuf ↔ domain conversions: JSON values, timestamps, formats and the resource views.

use switchyard_api::config::v1 as pb;
use switchyard_platform::audit::AuditRecord;
pub use switchyard_platform::proto_json::{from_proto_value, timestamp, to_proto_value};

use crate::biz::{
    catalog::DraftView,
    document::{self, Format},
    input::etag_of,
    model::{ConfigClient, Environment, Project},
    publishing::ReleaseView,
    reading::{Presented, WatchBatch},
    validation::{Rule, Violation},
};

pub fn format_to_proto(format: Format) -> pb::Format {
    match format {
        Format::Json => pb::Format::Json,
        Format::Yaml => pb::Format::Yaml,
        Format::Toml => pb::Format::Toml,
        Format::Properties => pb::Format::Properties,
        Format::Text => pb::Format::Text,
    }
}

/// `None` for FORMAT_UNSPECIFIED (keep the current format, JSON for new configs).
pub fn format_from_proto(value: i32) -> Option<Format> {
    match pb::Format::try_from(value).unwrap_or(pb::Format::Unspecified) {
        pb::Format::Unspecified => None,
        pb::Format::Json => Some(Format::Json),
        pb::Format::Yaml => Some(Format::Yaml),
        pb::Format::Toml => Some(Format::Toml),
        pb::Format::Properties => Some(Format::Properties),
        pb::Format::Text => Some(Format::Text),
    }
}

pub fn environment(environment: &Environment) -> pb::Environment {
    pb::Environment {
        name: format!("projects/{}/environments/{}", environment.project, environment.id),
        position: environment.position as i32,
        variables: environment.variables.clone().into_iter().collect(),
        revision: environment.revision.max(0) as u64,
        etag: etag_of(environment.version),
        public_evaluation: environment.public_evaluation,
    }
}

pub fn project(project: &Project) -> pb::Project {
    pb::Project {
        name: format!("projects/{}", project.id),
        display_name: project.display_name.clone(),
        environments: project.environments.iter().map(environment).collect(),
        create_time: timestamp(project.created_ms),
        etag: etag_of(1),
    }
}

pub fn rule_to_proto(rule: &Rule) -> pb::Rule {
    pb::Rule {
        expression: rule.expression.clone(),
        message: rule.message.clone(),
    }
}

pub fn rule_from_proto(rule: pb::Rule) -> Rule {
    Rule {
        expression: rule.expression,
        message: rule.message,
    }
}

pub fn config(view: &DraftView) -> pb::Config {
    let draft = &view.draft;
    pb::Config {
        name: format!("projects/{}/configs/{}", draft.project, draft.id),
        format: format_to_proto(draft.format) as i32,
        content: draft.content.clone(),
        overlays: draft.overlays.clone().into_iter().collect(),
        extends: draft.extends.clone(),
        schema: draft.schema.clone(),
        rules: draft.rules.iter().map(rule_to_proto).collect(),
        labels: draft.labels.clone().into_iter().collect(),
        etag: etag_of(draft.version),
        update_time: timestamp(draft.updated_ms),
        updated_by: draft.updated_by.clone(),
        secret_paths: draft.secret_paths.clone(),
    }
}

pub fn violation(violation: &Violation) -> pb::Violation {
    pb::Violation {
        path: violation.path.clone(),
        message: violation.message.clone(),
        source: violation.source.name().to_owned(),
    }
}

pub fn release(view: &ReleaseView) -> pb::Release {
    let release = &view.release;
    pb::Release {
        name: format!(
            "{}/configs/{}/releases/{}",
            release.env.resource(),
            release.config,
            release.number
        ),
        number: release.number.max(0) as u64,
        author: release.author.clone(),
        message: release.message.clone(),
        create_time: timestamp(release.created_ms),
        content_hash: release.content_hash.clone(),
        etag: release.content_hash.clone(),
        format: format_to_proto(release.format) as i32,
        content: release.content.clone(),
        overlay: release.overlay.clone(),
        resolved: Some(to_proto_value(&release.resolved)),
        source: release.source.clone(),
        revision: release.revision.max(0) as u64,
        secret_paths: release.secret_paths.clone(),
        imported_author: release.imported_author.clone(),
        imported_time: (release.imported_ms > 0)
            .then(|| timestamp(release.imported_ms))
            .flatten(),
    }
}

/// A published config. `text` is the resolved document as compact JSON (the text itself for
/// plain-text configs), or the config's own text when the caller asked for the raw view.
pub fn resolved(presented: &Presented, raw_text: Option<String>) -> pb::ResolvedConfig {
    pb::ResolvedConfig {
        content: Some(to_proto_value(presented.content())),
        ..event(presented, raw_text)
    }
}

/// A published config as a watch event: the document as `text` only, so that a change seen
/// by many watchers costs each of them a few string copies.
pub fn event(presented: &Presented, raw_text: Option<String>) -> pb::ResolvedConfig {
    let served = &presented.entry.served;
    let text = match (raw_text, &presented.revealed) {
        (Some(raw), _) => raw,
        (None, Some(revealed)) => document::delivered_text(served.format, revealed),
        (None, None) => presented.entry.text.clone(),
    };
    pb::ResolvedConfig {
        name: presented.entry.name.clone(),
        release: served.release.max(0) as u64,
        revision: served.revision.max(0) as u64,
        etag: served.content_hash.clone(),
        format: format_to_proto(served.format) as i32,
        content: None,
        text,
        secret_paths: served.secret_paths.clone(),
        deleted: false,
    }
}

pub fn client(client: &ConfigClient, current: i64) -> pb::ConfigClient {
    pb::ConfigClient {
        service: client.service.clone(),
        instance: client.instance.clone(),
        release: client.release.max(0) as u64,
        etag: client.etag.clone(),
        last_fetch_time: timestamp(client.last_fetch_ms),
        stale: client.release < current,
    }
}

pub fn watch_response(batch: WatchBatch) -> pb::WatchResponse {
    pb::WatchResponse {
        revision: batch.revision.max(0) as u64,
        snapshot: batch.snapshot,
        configs: batch.configs.iter().map(|config| event(config, None)).collect(),
    }
}

pub fn audit_record(record: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        sequence: record.sequence.max(0) as u64,
        actor: record.entry.actor.clone(),
        action: record.entry.action.clone(),
        resource: record.entry.resource.clone(),
        before_digest: record.entry.before_digest.clone().unwrap_or_default(),
        after_digest: record.entry.after_digest.clone().unwrap_or_default(),
        request_id: record.entry.request_id.clone().unwrap_or_default(),
        create_time: timestamp(record.created_ms),
        hash: record.hash.clone(),
        previous_hash: record.previous_hash.clone(),
    }
}

/// One difference between two documents.
pub fn change(change: &crate::biz::diff::Change) -> pb::Change {
    pb::Change {
        path: change.path.clone(),
        kind: change.kind.name().to_owned(),
        before: change.before.as_ref().map(to_proto_value),
        after: change.after.as_ref().map(to_proto_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_milliseconds() {
        let stamp = timestamp(1_700_000_000_123).unwrap();
        assert_eq!((stamp.seconds, stamp.nanos), (1_700_000_000, 123_000_000));
    }
}
