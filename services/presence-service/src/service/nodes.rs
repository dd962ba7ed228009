//! `ReportConnections`: the stream a gateway node keeps open. Each message renews the node's
//! lease and carries a batch of connection events, applied in one store round trip; the ack
//! tells the node when the service lost its lease (so it resends what it holds).

use futures::{Stream, StreamExt};
use switchyard_api::presence::v1::{self as pb, connection_event::Kind};
use switchyard_platform::auth::{KEY_SYNC_SCOPE, Principal, check_tenant};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status, Streaming};

use super::mapping;
use crate::biz::{
    engine::Op,
    input::{self, Indexed, MAX_CHANNEL, MAX_ID, Path, Violations},
    model::UserKey,
    tracker::Tracker,
};

#[derive(Debug, Clone, Copy)]
pub struct NodeLimits {
    pub max_lease_ttl_ms: i64,
    pub max_batch_events: usize,
}

/// Only Switchyard services (the shared service credential) report connections.
pub fn require_service<T>(request: &Request<T>) -> Result<(), Status> {
    let principal = Principal::of(request).map_err(|error| Status::unauthenticated(error.to_string()))?;
    if principal.scopes.iter().any(|scope| scope == KEY_SYNC_SCOPE) {
        return Ok(());
    }
    Err(Status::permission_denied(
        "reporting connections needs the services' shared credential (auth.key_sync_credential)",
    ))
}

/// Acks each report in order until the node hangs up, a report is refused, or `stop`.
pub fn serve(
    tracker: std::sync::Arc<Tracker>,
    limits: NodeLimits,
    inbound: Streaming<pb::NodeReport>,
    stop: CancellationToken,
) -> impl Stream<Item = Result<pb::NodeAck, Status>> + Send + 'static {
    futures::stream::unfold(Some(inbound), move |inbound| {
        let tracker = tracker.clone();
        let stop = stop.clone();
        async move {
            let mut inbound = inbound?;
            let report = tokio::select! {
                report = inbound.next() => report?,
                () = stop.cancelled() => {
                    return Some((Err(switchyard_platform::shutdown::Shutdown::stream_status()), None));
                }
            };
            match handle(&tracker, limits, report).await {
                Ok(ack) => Some((Ok(ack), Some(inbound))),
                Err(status) => Some((Err(status), None)),
            }
        }
    })
}

async fn handle(
    tracker: &Tracker,
    limits: NodeLimits,
    report: Result<pb::NodeReport, Status>,
) -> Result<pb::NodeAck, Status> {
    let report = report?;
    let mut violations = Violations::default();
    violations.text("node", &report.node, MAX_ID, true);
    if report.events.len() > limits.max_batch_events {
        violations.add("events", format!("at most {} per report", limits.max_batch_events));
    }
    let ttl = i64::from(report.lease_ttl_ms);
    if !(1_000..=limits.max_lease_ttl_ms).contains(&ttl) {
        violations.add("lease_ttl_ms", format!("1000 to {}", limits.max_lease_ttl_ms));
    }
    violations
        .into_result()
        .map_err(|violations| super::status(crate::biz::error::PresenceError::Invalid(violations)))?;
    let mut ops: Vec<(UserKey, Op)> = Vec::with_capacity(report.events.len());
    let mut rejected = Vec::new();
    for (index, event) in report.events.into_iter().enumerate() {
        let mut checks = Violations::default();
        let op = op(&mut checks, index, &report.node, event);
        match (op, checks.into_result()) {
            (Some(op), Ok(())) => ops.push(op),
            (None, Ok(())) => rejected.push(format!("events[{index}]: no event kind")),
            (_, Err(violations)) => rejected.extend(
                violations
                    .into_iter()
                    .map(|violation| format!("{}: {}", violation.field, violation.description)),
            ),
        }
    }
    let known = tracker.renew(&report.node, ttl).await.map_err(super::status)?;
    tracker.apply(ops).await.map_err(super::status)?;
    Ok(pb::NodeAck {
        batch: report.batch,
        resend_connections: !known,
        rejected,
    })
}

fn op(violations: &mut Violations, index: usize, node: &str, event: pb::ConnectionEvent) -> Option<(UserKey, Op)> {
    let event_at = Path(Indexed("events", index), ".");
    let field = |name| Path(event_at, name);
    if check_tenant(&event.tenant).is_err() {
        violations.add(field("tenant"), "not a tenant id");
    }
    violations.text(field("user_id"), &event.user_id, MAX_ID, true);
    violations.text(field("connection_id"), &event.connection_id, MAX_ID * 2, true);
    let connection = event.connection_id;
    let op = match event.kind? {
        Kind::Opened(opened) => {
            let device = mapping::device(opened.device);
            input::check_device(violations, field("opened.device."), &device);
            let (metas, _) =
                input::check_metas(violations, field("opened.metas."), mapping::metas(opened.metas), false);
            for channel in &opened.channels {
                violations.text(field("opened.channels"), channel, MAX_CHANNEL, true);
            }
            Op::Open {
                connection,
                node: node.to_owned(),
                device,
                metas,
                channels: opened.channels,
            }
        }
        Kind::Closed(closed) => Op::Close {
            connection,
            clean: closed.clean,
        },
        Kind::Updated(metas) => {
            let (patch, _) = input::check_metas(violations, field("updated."), mapping::metas(Some(metas)), false);
            Op::Update { connection, patch }
        }
        Kind::Subscribed(channel) => {
            violations.text(field("subscribed"), &channel, MAX_CHANNEL, true);
            Op::Subscribe { connection, channel }
        }
        Kind::Unsubscribed(channel) => {
            violations.text(field("unsubscribed"), &channel, MAX_CHANNEL, true);
            Op::Unsubscribe { connection, channel }
        }
        Kind::Active(_) => Op::Active { connection },
    };
    Some((UserKey::new(event.tenant, event.user_id), op))
}
