//! The node's one `ReportConnections` stream to presence-service. It sends what the
//! reporter queued in batches, renews the node's lease with an empty batch when nothing
//! else goes out, resends every tracked connection when presence-service says it lost the
//! lease, and reconnects after failures with what was not acknowledged put back in front.
//! If the queue overflowed while presence-service was away, the node starts over under a
//! new lease name: the old lease lapses, so connections that closed meanwhile leave too.

use std::{sync::Arc, time::Duration};

use switchyard_api::presence::v1::{
    self as pb, connection_event::Kind, presence_service_client::PresenceServiceClient,
};
use switchyard_platform::{clock::now_ms, proto_json::timestamp};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Streaming, metadata::AsciiMetadataValue, transport::Channel};

use crate::{
    biz::presence::{DeviceInfo, Happened, PresenceMetas, PresenceReporter, Report},
    conf::PresenceSettings,
};

const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a stopping node waits for its sessions to report their closes.
const DRAIN: Duration = Duration::from_secs(2);

pub struct PresenceLink {
    client: PresenceServiceClient<Channel>,
    authorization: AsciiMetadataValue,
    reporter: Arc<PresenceReporter>,
    /// The instance id; the lease name adds a generation after an overflow.
    node: String,
    settings: PresenceSettings,
}

impl std::fmt::Debug for PresenceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceLink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Why a stream ended.
enum Ended {
    Shutdown,
    Failed(String),
    Overflowed,
}

impl PresenceLink {
    pub fn new(
        channel: Channel,
        authorization: AsciiMetadataValue,
        reporter: Arc<PresenceReporter>,
        node: String,
        settings: PresenceSettings,
    ) -> Self {
        Self {
            client: PresenceServiceClient::new(channel),
            authorization,
            reporter,
            node,
            settings,
        }
    }

    /// Reports until `stop`, then flushes what the closing sessions report.
    pub async fn run(self, stop: CancellationToken) {
        let mut generation = 0u32;
        let mut retry = RETRY_FIRST;
        loop {
            let lease = match generation {
                0 => self.node.clone(),
                n => format!("{}~{n}", self.node),
            };
            match self.stream(&lease, &stop).await {
                Ended::Shutdown => return,
                Ended::Overflowed => {
                    tracing::warn!(lease, "presence reports overflowed; starting over under a new lease");
                    generation += 1;
                    retry = RETRY_FIRST;
                    continue;
                }
                Ended::Failed(error) => {
                    tracing::warn!(%error, "reporting connections to presence-service; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = stop.cancelled() => return,
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    async fn stream(&self, lease: &str, stop: &CancellationToken) -> Ended {
        let (sender, receiver) = mpsc::channel(4);
        let mut request = Request::new(ReceiverStream::new(receiver));
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        let mut client = self.client.clone();
        let mut acks = match client.report_connections(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Ended::Failed(status.message().to_owned()),
        };
        let mut stream = Stream {
            lease,
            sender,
            acks: &mut acks,
            batch: 0,
            ttl_ms: self.settings.lease_ttl_ms.clamp(1_000, 120_000) as u32,
        };
        // A new stream starts from what the node holds now: whatever the last stream left
        // unacknowledged, presence-service ends up exactly where the node is.
        if let Err(error) = self.resync(&mut stream).await {
            return error;
        }
        let renew_every = Duration::from_millis(u64::from(stream.ttl_ms) / 3);
        let flush = Duration::from_millis(self.settings.flush_ms);
        let mut renew_at = Instant::now() + renew_every;
        loop {
            tokio::select! {
                () = self.reporter.ready() => tokio::time::sleep(flush).await,
                () = tokio::time::sleep_until(renew_at) => {}
                () = stop.cancelled() => return self.drain(&mut stream).await,
            }
            if self.reporter.take_overflow() {
                return Ended::Overflowed;
            }
            let reports = self.reporter.take(self.settings.max_batch.max(1));
            if let Err(error) = self.send(&mut stream, reports).await {
                return error;
            }
            renew_at = Instant::now() + renew_every;
        }
    }

    /// Sends one batch and waits for its ack; resends every connection when asked.
    async fn send(&self, stream: &mut Stream<'_>, reports: Vec<Report>) -> Result<(), Ended> {
        let ack = match stream.exchange(&reports).await {
            Ok(ack) => ack,
            Err(error) => {
                self.reporter.requeue(reports);
                return Err(Ended::Failed(error));
            }
        };
        if !ack.resend_connections {
            return Ok(());
        }
        self.resync(stream).await
    }

    /// Replaces what is queued with the node's state now (closes of connections it no
    /// longer holds, then every connection it holds) and sends it.
    async fn resync(&self, stream: &mut Stream<'_>) -> Result<(), Ended> {
        let state = self.reporter.restart();
        tracing::info!(
            lease = stream.lease,
            reports = state.len(),
            "sending this node's connections to presence-service"
        );
        if state.is_empty() {
            stream.exchange(&[]).await.map_err(Ended::Failed)?;
        }
        for chunk in state.chunks(self.settings.max_batch.max(1)) {
            stream.exchange(chunk).await.map_err(Ended::Failed)?;
        }
        Ok(())
    }

    /// Gives closing sessions a moment to report, sends what they reported, and ends.
    async fn drain(&self, stream: &mut Stream<'_>) -> Ended {
        let deadline = Instant::now() + DRAIN;
        while self.reporter.tracked() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            let reports = self.reporter.take(self.settings.max_batch.max(1));
            if reports.is_empty() {
                return Ended::Shutdown;
            }
            if stream.exchange(&reports).await.is_err() {
                return Ended::Shutdown;
            }
        }
    }
}

struct Stream<'a> {
    lease: &'a str,
    sender: mpsc::Sender<pb::NodeReport>,
    acks: &'a mut Streaming<pb::NodeAck>,
    batch: u64,
    ttl_ms: u32,
}

impl Stream<'_> {
    async fn exchange(&mut self, reports: &[Report]) -> Result<pb::NodeAck, String> {
        self.batch += 1;
        let report = pb::NodeReport {
            node: self.lease.to_owned(),
            lease_ttl_ms: self.ttl_ms,
            batch: self.batch,
            events: reports.iter().map(event).collect(),
        };
        self.sender
            .send(report)
            .await
            .map_err(|_| "the report stream closed".to_owned())?;
        match self.acks.message().await {
            Ok(Some(ack)) if ack.batch == self.batch => {
                if !ack.rejected.is_empty() {
                    let first: Vec<&String> = ack.rejected.iter().take(5).collect();
                    tracing::warn!(rejected = ?first, "presence-service refused events");
                }
                Ok(ack)
            }
            Ok(Some(ack)) => Err(format!("ack for batch {} while {} was expected", ack.batch, self.batch)),
            Ok(None) => Err("presence-service ended the stream".to_owned()),
            Err(status) => Err(status.message().to_owned()),
        }
    }
}

fn event(report: &Report) -> pb::ConnectionEvent {
    let kind = match &report.happened {
        Happened::Opened {
            device,
            metas,
            channels,
        } => Kind::Opened(pb::ConnectionOpened {
            device: Some(device_of(device)),
            metas: Some(metas_of(metas)),
            channels: channels.clone(),
        }),
        Happened::Closed { clean } => Kind::Closed(pb::ConnectionClosed { clean: *clean }),
        Happened::Updated(metas) => Kind::Updated(metas_of(metas)),
        Happened::Subscribed(channel) => Kind::Subscribed(channel.clone()),
        Happened::Unsubscribed(channel) => Kind::Unsubscribed(channel.clone()),
        Happened::Active => Kind::Active(true),
    };
    pb::ConnectionEvent {
        tenant: report.tenant.clone(),
        user_id: report.user.clone(),
        connection_id: report.connection.clone(),
        time: timestamp(now_ms()),
        kind: Some(kind),
    }
}

fn device_of(device: &DeviceInfo) -> pb::Device {
    pb::Device {
        id: device.id.clone(),
        r#type: device.kind.clone(),
        os: device.os.clone(),
        app_version: device.app_version.clone(),
    }
}

fn metas_of(metas: &PresenceMetas) -> pb::Metas {
    pb::Metas {
        status: metas.status.clone(),
        current_page: metas.current_page.clone(),
        shopping_activity: metas.shopping_activity.as_ref().map(|shopping| pb::ShoppingActivity {
            viewing_product: shopping.viewing_product.clone(),
            cart_items: shopping.cart_items,
            in_checkout: shopping.in_checkout,
        }),
        location: metas.location.as_ref().map(|location| pb::Location {
            country: location.country.clone(),
            city: location.city.clone(),
        }),
        connection_quality: metas.connection_quality.clone(),
    }
}
