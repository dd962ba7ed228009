//! Protobuf ↔ domain for ingestion, and the one status that carries retry advice.

use std::time::Duration;

use switchyard_api::experiments::v1 as pb;
use switchyard_platform::{auth::Principal, clock::now_ms, error::FieldViolation, proto_json::timestamp_ms};
use tonic::{Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use super::{EventIngestion, invalid, project_of};
use crate::biz::{
    analysis::ExposureCounts,
    error::ExperimentError,
    ingest::{BatchOutcome, EventInput, ExposureInput},
    management::Caller,
};

/// Events of a stream stored together.
const STREAM_BATCH: usize = 500;

/// How long a client told to back off should wait before retrying.
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub fn exposure_from(exposure: pb::Exposure) -> ExposureInput {
    ExposureInput {
        id: exposure.id,
        experiment: exposure.experiment,
        unit: exposure.unit,
        variant: exposure.variant,
        environment: exposure.environment,
        time_ms: exposure.time.as_ref().map(timestamp_ms),
        attributes: exposure.attributes.into_iter().collect(),
    }
}

pub fn event_from(event: pb::Event) -> EventInput {
    EventInput {
        id: event.id,
        name: event.name,
        unit: event.unit,
        value: event.value,
        time_ms: event.time.as_ref().map(timestamp_ms),
        environment: event.environment,
    }
}

pub fn outcome_to(outcome: BatchOutcome) -> pb::LogResponse {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pb::LogResponse {
        stored: count(outcome.stored),
        duplicates: count(outcome.duplicates),
        rejected: outcome
            .rejected
            .into_iter()
            .map(|rejection| pb::Rejection {
                index: count(rejection.index),
                id: rejection.id,
                reason: rejection.reason,
            })
            .collect(),
    }
}

/// Stores a stream of events in batches as they arrive; the answer counts the whole stream.
pub async fn stream_events(
    ingestion: &EventIngestion,
    principal: &Principal,
    mut stream: Streaming<pb::StreamEventsRequest>,
) -> Result<pb::LogResponse, Status> {
    let caller = Caller {
        principal,
        request_id: None,
        authorization: None,
        act_for_tenant: None,
    };
    let mut project: Option<String> = None;
    let mut pending: Vec<EventInput> = Vec::new();
    let mut total = BatchOutcome::default();
    while let Some(message) = stream.message().await? {
        let named = project_of(&message.parent)?;
        match &project {
            None => project = Some(named),
            Some(first) if *first != named => {
                let why = "every message of a stream names the same project";
                return Err(invalid(vec![FieldViolation::new("parent", why)]));
            }
            Some(_) => {}
        }
        if message.event.is_none() && message.events.is_empty() {
            let why = "each message carries an event (one NDJSON line) or events";
            return Err(invalid(vec![FieldViolation::new("event", why)]));
        }
        pending.extend(message.event.into_iter().chain(message.events).map(event_from));
        while pending.len() >= STREAM_BATCH {
            let batch: Vec<EventInput> = pending.drain(..STREAM_BATCH).collect();
            store(ingestion, caller, project.as_deref(), batch, &mut total).await?;
        }
    }
    if !pending.is_empty() {
        store(ingestion, caller, project.as_deref(), pending, &mut total).await?;
    }
    Ok(outcome_to(total))
}

/// Stores one batch of a stream and adds its outcome, its positions moved past what came before.
async fn store(
    ingestion: &EventIngestion,
    caller: Caller<'_>,
    project: Option<&str>,
    batch: Vec<EventInput>,
    total: &mut BatchOutcome,
) -> Result<(), Status> {
    let Some(project) = project else { return Ok(()) };
    let offset = total.stored + total.duplicates + total.rejected.len();
    let outcome = ingestion
        .log_events(caller, project, batch, now_ms())
        .await
        .map_err(status)?;
    total.stored += outcome.stored;
    total.duplicates += outcome.duplicates;
    total.rejected.extend(outcome.rejected.into_iter().map(|mut rejection| {
        rejection.index += offset;
        rejection
    }));
    Ok(())
}

pub fn counts_to(counts: ExposureCounts) -> pb::ExposureCounts {
    pb::ExposureCounts {
        phase: i32::try_from(counts.phase).unwrap_or(i32::MAX),
        arms: counts
            .arms
            .into_iter()
            .map(|(variant, units)| pb::exposure_counts::ArmUnits { variant, units })
            .collect(),
        multiple_exposures: counts.multiple,
    }
}

/// The status of a failed batch; an overloaded server says when to retry.
pub fn status(error: ExperimentError) -> Status {
    if let ExperimentError::Overloaded = error {
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(RETRY_AFTER));
        return Status::with_error_details(tonic::Code::ResourceExhausted, error.to_string(), details);
    }
    switchyard_platform::error::to_status(&error)
}
