//! Protobuf ↔ domain for ingestion, and the one status that carries retry advice.

use std::time::Duration;

use switchyard_api::experiments::v1 as pb;
use switchyard_platform::proto_json::timestamp_ms;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::biz::{
    analysis::ExposureCounts,
    error::ExperimentError,
    ingest::{BatchOutcome, EventInput, ExposureInput},
};

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
