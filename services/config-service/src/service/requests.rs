//! How request fields become use-case arguments: resource names split into their ids, page
//! tokens and sizes checked, filters and subscriptions built. Each refusal names its field.

use switchyard_api::config::v1 as pb;
use switchyard_platform::{audit::AuditFilter, page_token};

use crate::biz::{
    catalog::ConfigSpec,
    environments::EnvironmentUpdate,
    error::{ConfigError, ConfigResult},
    input::check_length,
    model::EnvKey,
    names::parse,
    publishing::DiffSide,
    reading::{ClientId, Subscription},
    store::Caller,
};

use super::convert;

/// `projects/{p}` as its project id.
pub(super) fn project_ref(field: &str, name: &str) -> ConfigResult<String> {
    Ok(parse(field, name, "projects/*")?.remove(0))
}

pub(super) fn env_key(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<EnvKey> {
    let ids = parse(field, name, "projects/*/environments/*")?;
    Ok(EnvKey::new(caller.tenant(), &ids[0], &ids[1]))
}

/// `projects/{p}/environments/{e}/configs/{c}` as an env key and config id.
pub(super) fn published(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<(EnvKey, String)> {
    let ids = parse(field, name, "projects/*/environments/*/configs/*")?;
    Ok((EnvKey::new(caller.tenant(), &ids[0], &ids[1]), ids[2].clone()))
}

/// `.../configs/{c}/releases/{n}` as an env key, config id and release number.
pub(super) fn release_ref(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<(EnvKey, String, i64)> {
    let Some((parent, number)) = name.rsplit_once("/releases/") else {
        return Err(ConfigError::invalid(
            field,
            "expected `projects/*/environments/*/configs/*/releases/*`",
        ));
    };
    let number: i64 = number
        .parse()
        .ok()
        .filter(|number| *number > 0)
        .ok_or_else(|| ConfigError::invalid(field, "the release number must be a positive integer"))?;
    let (env, config) = published(caller, field, parent)?;
    Ok((env, config, number))
}

pub(super) fn draft_ref(field: &str, name: &str) -> ConfigResult<(String, String)> {
    let ids = parse(field, name, "projects/*/configs/*")?;
    Ok((ids[0].clone(), ids[1].clone()))
}

pub(super) fn diff_side(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<DiffSide> {
    if name.contains("/releases/") {
        let (env, config, number) = release_ref(caller, field, name)?;
        return Ok(DiffSide::Release { env, config, number });
    }
    let (env, config) = published(caller, field, name)?;
    Ok(DiffSide::Current { env, config })
}

/// The fields an update mask names (empty: the variables, as before masks existed).
pub(super) fn environment_update(body: &pb::UpdateEnvironmentRequest) -> ConfigResult<EnvironmentUpdate> {
    let paths = body
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.clone())
        .unwrap_or_default();
    let paths = if paths.is_empty() {
        vec!["variables".to_owned()]
    } else {
        paths
    };
    let mut update = EnvironmentUpdate::default();
    for path in paths {
        match path.as_str() {
            "variables" => update.variables = Some(body.variables.clone().into_iter().collect()),
            "public_evaluation" | "publicEvaluation" => update.public_evaluation = Some(body.public_evaluation),
            other => {
                return Err(ConfigError::invalid(
                    "update_mask",
                    format!("`{other}` cannot be updated: name `variables` and/or `public_evaluation`"),
                ));
            }
        }
    }
    Ok(update)
}

pub(super) fn spec_of(config: pb::Config) -> ConfigSpec {
    ConfigSpec {
        format: convert::format_from_proto(config.format),
        content: config.content,
        overlays: config.overlays.into_iter().collect(),
        extends: config.extends,
        schema: config.schema,
        rules: config.rules.into_iter().map(convert::rule_from_proto).collect(),
        labels: config.labels.into_iter().collect(),
    }
}

/// Keyset page tokens hold the last id (or number) of the previous page, opaquely.
pub(super) fn next_token(full: bool, last: Option<String>) -> String {
    match (full, last) {
        (true, Some(last)) => page_token::encode(&last),
        _ => String::new(),
    }
}

/// The position a page token resumes after; empty for the first page.
pub(super) fn position(token: &str) -> ConfigResult<String> {
    page_token::decode(token)
        .map(Option::unwrap_or_default)
        .map_err(|violation| ConfigError::Invalid(vec![violation]))
}

/// A numeric position (a release number, an audit sequence); `None` for the first page.
pub(super) fn numeric_position(token: &str) -> ConfigResult<Option<i64>> {
    let position = position(token)?;
    if position.is_empty() {
        return Ok(None);
    }
    position
        .parse()
        .map(Some)
        .map_err(|_| ConfigError::invalid("page_token", "not a token this list issued"))
}

/// A requested page size: 0 asks for the default, a negative one is refused.
pub(super) fn page_size(requested: i32) -> ConfigResult<i32> {
    if requested < 0 {
        return Err(ConfigError::invalid(
            "page_size",
            "must be 0 (for the default) or positive",
        ));
    }
    Ok(requested)
}

pub(super) fn rfc3339_ms(field: &str, text: &str) -> ConfigResult<Option<i64>> {
    if text.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| Some(time.timestamp_millis()))
        .map_err(|_| ConfigError::invalid(field, "an RFC 3339 time such as 2026-11-21T10:00:00Z"))
}

pub(super) fn audit_filter(request: &pb::ListAuditRecordsRequest) -> ConfigResult<AuditFilter> {
    let before = numeric_position(&request.page_token)?;
    Ok(AuditFilter {
        resource_prefix: Some(request.resource.clone()).filter(|text| !text.is_empty()),
        actor: Some(request.actor.clone()).filter(|text| !text.is_empty()),
        start_ms: rfc3339_ms("start_time", &request.start_time)?,
        end_ms: rfc3339_ms("end_time", &request.end_time)?,
        before_sequence: before,
        after_sequence: None,
        limit: i64::from(page_size(request.page_size)?),
    })
}

/// The longest `client_id`, in characters.
const MAX_CLIENT_ID: usize = 256;

pub(super) fn client_of(service: &str, instance: &str, id: &str) -> ConfigResult<ClientId> {
    check_length("client_id", id, MAX_CLIENT_ID)?;
    if id.chars().any(char::is_control) {
        return Err(ConfigError::invalid("client_id", "no control characters"));
    }
    Ok(ClientId {
        service: service.to_owned(),
        instance: instance.to_owned(),
        id: id.to_owned(),
    })
}

pub(super) fn subscription(
    env: EnvKey,
    since: i64,
    configs: &[String],
    reveal: bool,
    client: ClientId,
) -> Subscription {
    Subscription {
        env,
        since,
        configs: configs.to_vec(),
        reveal,
        client,
    }
}
