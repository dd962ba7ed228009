//! `ProjectArchive` ↔ `biz::archive::Archive`.

use switchyard_api::config::v1 as pb;

use super::convert::{
    format_from_proto, format_to_proto, from_proto_value, rule_from_proto, rule_to_proto, timestamp, to_proto_value,
};
use crate::biz::{
    archive::{Archive, ArchivedConfig, ArchivedRelease, ArchivedServed},
    catalog::ConfigSpec,
    document::Format,
    error::{ConfigError, ConfigResult},
    model::{Environment, Project, Served},
    names::parse,
};

fn ms(stamp: &Option<pbjson_types::Timestamp>) -> i64 {
    stamp
        .as_ref()
        .map(|stamp| stamp.seconds * 1000 + i64::from(stamp.nanos) / 1_000_000)
        .unwrap_or(0)
}

fn format_or_json(value: i32) -> Format {
    format_from_proto(value).unwrap_or(Format::Json)
}

pub fn to_proto(archive: &Archive) -> pb::ProjectArchive {
    pb::ProjectArchive {
        format_version: archive.format_version,
        project: Some(super::convert::project(&archive.project)),
        configs: archive
            .configs
            .iter()
            .map(|config| pb::Config {
                name: format!("projects/{}/configs/{}", archive.project.id, config.id),
                format: format_to_proto(config.format) as i32,
                content: config.spec.content.clone(),
                overlays: config.spec.overlays.clone().into_iter().collect(),
                extends: config.spec.extends.clone(),
                schema: config.spec.schema.clone(),
                rules: config.spec.rules.iter().map(rule_to_proto).collect(),
                labels: config.spec.labels.clone().into_iter().collect(),
                update_time: timestamp(config.updated_ms),
                updated_by: config.updated_by.clone(),
                ..pb::Config::default()
            })
            .collect(),
        releases: archive
            .releases
            .iter()
            .map(|release| pb::ArchivedRelease {
                environment: release.environment.clone(),
                config: release.config.clone(),
                number: release.number.max(0) as u64,
                author: release.author.clone(),
                message: release.message.clone(),
                create_time: timestamp(release.created_ms),
                content: release.content.clone(),
                overlay: release.overlay.clone(),
                source: release.source.clone(),
                extends: release.extends.clone(),
                format: format_to_proto(release.format) as i32,
                resolved: Some(to_proto_value(&release.resolved)),
                content_hash: release.content_hash.clone(),
                secret_paths: release.secret_paths.clone(),
                revision: release.revision.max(0) as u64,
            })
            .collect(),
        current: archive
            .current
            .iter()
            .map(|row| pb::ArchivedServed {
                environment: row.environment.clone(),
                config: row.served.config.clone(),
                release: row.served.release.max(0) as u64,
                format: format_to_proto(row.served.format) as i32,
                resolved: Some(to_proto_value(&row.served.resolved)),
                content_hash: row.served.content_hash.clone(),
                secret_paths: row.served.secret_paths.clone(),
            })
            .collect(),
    }
}

pub fn from_proto(archive: pb::ProjectArchive) -> ConfigResult<Archive> {
    let project = archive
        .project
        .ok_or_else(|| ConfigError::invalid("archive.project", "required"))?;
    let project_id = parse("archive.project.name", &project.name, "projects/*")?.remove(0);
    let environments = project
        .environments
        .iter()
        .map(|environment| {
            let ids = parse(
                "archive.project.environments",
                &environment.name,
                "projects/*/environments/*",
            )?;
            Ok(Environment {
                project: project_id.clone(),
                id: ids[1].clone(),
                position: i64::from(environment.position),
                variables: environment.variables.clone().into_iter().collect(),
                revision: i64::try_from(environment.revision).unwrap_or(0),
                compacted: 0,
                version: environment.etag.parse().unwrap_or(1),
                public_evaluation: environment.public_evaluation,
            })
        })
        .collect::<ConfigResult<Vec<_>>>()?;
    let configs = archive
        .configs
        .into_iter()
        .map(|config| {
            let ids = parse("archive.configs", &config.name, "projects/*/configs/*")?;
            let format = format_or_json(config.format);
            Ok(ArchivedConfig {
                id: ids[1].clone(),
                format,
                updated_by: config.updated_by,
                updated_ms: ms(&config.update_time),
                spec: ConfigSpec {
                    format: Some(format),
                    content: config.content,
                    overlays: config.overlays.into_iter().collect(),
                    extends: config.extends,
                    schema: config.schema,
                    rules: config.rules.into_iter().map(rule_from_proto).collect(),
                    labels: config.labels.into_iter().collect(),
                },
            })
        })
        .collect::<ConfigResult<Vec<_>>>()?;
    let releases = archive
        .releases
        .into_iter()
        .map(|release| ArchivedRelease {
            environment: release.environment,
            config: release.config,
            number: i64::try_from(release.number).unwrap_or(0),
            author: release.author,
            message: release.message,
            created_ms: ms(&release.create_time),
            format: format_or_json(release.format),
            content: release.content,
            overlay: release.overlay,
            extends: release.extends,
            resolved: release.resolved.as_ref().map(from_proto_value).unwrap_or_default(),
            content_hash: release.content_hash,
            secret_paths: release.secret_paths,
            source: release.source,
            revision: i64::try_from(release.revision).unwrap_or(0),
        })
        .collect();
    let current = archive
        .current
        .into_iter()
        .map(|row| ArchivedServed {
            environment: row.environment,
            served: Served {
                config: row.config,
                revision: 0,
                release: i64::try_from(row.release).unwrap_or(0),
                format: format_or_json(row.format),
                resolved: row.resolved.as_ref().map(from_proto_value).unwrap_or_default(),
                content_hash: row.content_hash,
                secret_paths: row.secret_paths,
                created_ms: 0,
                rollout: None,
            },
        })
        .collect();
    Ok(Archive {
        format_version: archive.format_version,
        project: Project {
            id: project_id,
            display_name: project.display_name,
            created_ms: ms(&project.create_time),
            environments,
        },
        configs,
        releases,
        current,
    })
}
