//! What this node tells presence-service about its connections. Sessions record what
//! happens (a user connected, subscribed to a presence channel, changed their metas, left)
//! and the reporter queues it; one link per node (`data::presence`) ships the queue in
//! batches over one stream and renews the node's lease, so idle connections cost nothing.
//! The reporter also remembers every tracked connection as it is now, so the node can
//! resend them all when presence-service lost its state.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What a client says about its device at connect. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// A stable install id: a reconnect with the same id takes the lost connection's place.
    #[serde(default)]
    pub id: String,
    /// `phone`, `tablet`, `desktop`, `web`, `tv` or `other`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub app_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShoppingActivity {
    #[serde(default)]
    pub viewing_product: String,
    #[serde(default)]
    pub cart_items: i32,
    #[serde(default)]
    pub in_checkout: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub city: String,
}

/// The `presence` command and connect's `presence` field: only the fields sent change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceMetas {
    /// `online`, `away`, `busy` or `invisible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shopping_activity: Option<ShoppingActivity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// `good`, `fair` or `poor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_quality: Option<String>,
}

impl PresenceMetas {
    /// The checks a client gets an answer for at once (presence-service checks everything
    /// again; what it refuses there is only logged).
    pub fn check(&self) -> Result<(), String> {
        if let Some(status) = &self.status
            && !["online", "away", "busy", "invisible"].contains(&status.as_str())
        {
            return Err("status: online, away, busy or invisible".into());
        }
        if self
            .current_page
            .as_ref()
            .is_some_and(|page| page.chars().count() > 512)
        {
            return Err("current_page: at most 512 characters".into());
        }
        if let Some(quality) = &self.connection_quality
            && !["good", "fair", "poor", ""].contains(&quality.as_str())
        {
            return Err("connection_quality: good, fair or poor".into());
        }
        Ok(())
    }

    /// Applies an update on top of these metas.
    pub fn merge(&mut self, update: &PresenceMetas) {
        if update.status.is_some() {
            self.status.clone_from(&update.status);
        }
        if update.current_page.is_some() {
            self.current_page.clone_from(&update.current_page);
        }
        if update.shopping_activity.is_some() {
            self.shopping_activity.clone_from(&update.shopping_activity);
        }
        if update.location.is_some() {
            self.location.clone_from(&update.location);
        }
        if update.connection_quality.is_some() {
            self.connection_quality.clone_from(&update.connection_quality);
        }
    }
}

/// One thing that happened to a tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    Opened {
        device: DeviceInfo,
        metas: PresenceMetas,
        channels: Vec<String>,
    },
    /// `clean`: closed on purpose; otherwise lost (it lingers for the grace period).
    Closed {
        clean: bool,
    },
    Updated(PresenceMetas),
    Subscribed(String),
    Unsubscribed(String),
    Active,
}

/// An event as queued for presence-service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub tenant: String,
    pub user: String,
    /// Unique across nodes: `<node id>.<session id>`.
    pub connection: String,
    pub happened: Happened,
}

#[derive(Debug, Clone)]
struct Tracked {
    tenant: String,
    user: String,
    device: DeviceInfo,
    metas: PresenceMetas,
    channels: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Queue {
    tracked: HashMap<String, Tracked>,
    pending: Vec<Report>,
    /// Reports dropped because the queue was full (presence-service unreachable for long).
    overflowed: bool,
}

/// The node's presence queue. Cheap to call from every session.
#[derive(Debug)]
pub struct PresenceReporter {
    queue: Mutex<Queue>,
    max_pending: usize,
    ready: Notify,
}

impl PresenceReporter {
    /// Holds at most `max_pending` unsent reports; beyond, the node resends everything once
    /// presence-service is back (see [`PresenceReporter::take_overflow`]).
    pub fn new(max_pending: usize) -> Self {
        Self {
            queue: Mutex::default(),
            max_pending: max_pending.max(1),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records what happened to `connection` and keeps the tracked copy current.
    pub fn record(&self, tenant: &str, user: &str, connection: &str, happened: Happened) {
        let mut queue = self.lock();
        match &happened {
            Happened::Opened {
                device,
                metas,
                channels,
            } => {
                queue.tracked.insert(
                    connection.to_owned(),
                    Tracked {
                        tenant: tenant.to_owned(),
                        user: user.to_owned(),
                        device: device.clone(),
                        metas: metas.clone(),
                        channels: channels.iter().cloned().collect(),
                    },
                );
            }
            Happened::Closed { .. } => {
                queue.tracked.remove(connection);
            }
            Happened::Updated(update) => {
                if let Some(tracked) = queue.tracked.get_mut(connection) {
                    tracked.metas.merge(update);
                }
            }
            Happened::Subscribed(channel) => {
                if let Some(tracked) = queue.tracked.get_mut(connection) {
                    tracked.channels.insert(channel.clone());
                }
            }
            Happened::Unsubscribed(channel) => {
                if let Some(tracked) = queue.tracked.get_mut(connection) {
                    tracked.channels.remove(channel);
                }
            }
            Happened::Active => {}
        }
        if queue.pending.len() >= self.max_pending {
            queue.pending.clear();
            queue.overflowed = true;
        }
        if !queue.overflowed {
            queue.pending.push(Report {
                tenant: tenant.to_owned(),
                user: user.to_owned(),
                connection: connection.to_owned(),
                happened,
            });
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Waits until something is queued.
    pub async fn ready(&self) {
        if !self.lock().pending.is_empty() {
            return;
        }
        self.ready.notified().await;
    }

    /// Up to `max` queued reports, oldest first.
    pub fn take(&self, max: usize) -> Vec<Report> {
        let mut queue = self.lock();
        let count = queue.pending.len().min(max);
        queue.pending.drain(..count).collect()
    }

    /// Puts reports that could not be delivered back in front of the queue.
    pub fn requeue(&self, mut reports: Vec<Report>) {
        let mut queue = self.lock();
        if queue.overflowed {
            return;
        }
        reports.append(&mut queue.pending);
        queue.pending = reports;
    }

    /// Whether reports were dropped since the last call: the link then starts over under a
    /// new lease, so what was lost cannot leave ghosts behind.
    pub fn take_overflow(&self) -> bool {
        std::mem::take(&mut self.lock().overflowed)
    }

    /// Empties the queue into what brings presence-service to this node's state now: the
    /// closes of connections no longer held (so none is left behind), then every held
    /// connection as `Opened` with its current metas and channels. For a new stream, or a
    /// lease presence-service lost.
    pub fn restart(&self) -> Vec<Report> {
        let mut queue = self.lock();
        queue.overflowed = false;
        let pending = std::mem::take(&mut queue.pending);
        let mut state: Vec<Report> = pending
            .into_iter()
            .filter(|report| {
                matches!(report.happened, Happened::Closed { .. }) && !queue.tracked.contains_key(&report.connection)
            })
            .collect();
        state.extend(queue.tracked.iter().map(|(connection, tracked)| Report {
            tenant: tracked.tenant.clone(),
            user: tracked.user.clone(),
            connection: connection.clone(),
            happened: Happened::Opened {
                device: tracked.device.clone(),
                metas: tracked.metas.clone(),
                channels: tracked.channels.iter().cloned().collect(),
            },
        }));
        state
    }

    /// Connections tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().tracked.len()
    }
}

/// One session's side of presence: it reports its own connection, throttles activity
/// reports and rate-limits the client's `presence` updates.
#[derive(Debug)]
pub struct ConnectionPresence {
    reporter: std::sync::Arc<PresenceReporter>,
    tenant: String,
    user: String,
    connection: String,
    /// Presence channels reported as subscribed.
    channels: BTreeSet<String>,
    last_active: std::time::Instant,
    activity_every: std::time::Duration,
    updates: super::token_bucket::TokenBucket,
}

/// How one connection reports.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRules {
    pub activity_every: std::time::Duration,
    pub updates_per_second: u32,
}

impl ConnectionPresence {
    /// Reports the connection open.
    pub fn open(
        reporter: std::sync::Arc<PresenceReporter>,
        (tenant, user, connection): (&str, &str, String),
        device: DeviceInfo,
        metas: PresenceMetas,
        rules: ConnectionRules,
    ) -> Self {
        let happened = Happened::Opened {
            device,
            metas,
            channels: Vec::new(),
        };
        reporter.record(tenant, user, &connection, happened);
        Self {
            reporter,
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            connection,
            channels: BTreeSet::new(),
            last_active: std::time::Instant::now(),
            activity_every: rules.activity_every,
            updates: super::token_bucket::TokenBucket::new(rules.updates_per_second.max(1)),
        }
    }

    fn record(&self, happened: Happened) {
        self.reporter
            .record(&self.tenant, &self.user, &self.connection, happened);
    }

    /// The client did something: reported at most once per `activity_every`.
    pub fn active(&mut self) {
        if self.last_active.elapsed() < self.activity_every {
            return;
        }
        self.last_active = std::time::Instant::now();
        self.record(Happened::Active);
    }

    /// The client's `presence` command.
    pub fn update(&mut self, metas: PresenceMetas) -> Result<(), UpdateRefused> {
        metas.check().map_err(UpdateRefused::Invalid)?;
        if !self.updates.take() {
            return Err(UpdateRefused::TooFast);
        }
        self.last_active = std::time::Instant::now();
        self.record(Happened::Updated(metas));
        Ok(())
    }

    pub fn subscribed(&mut self, channel: &str) {
        if self.channels.insert(channel.to_owned()) {
            self.record(Happened::Subscribed(channel.to_owned()));
        }
    }

    pub fn unsubscribed(&mut self, channel: &str) {
        if self.channels.remove(channel) {
            self.record(Happened::Unsubscribed(channel.to_owned()));
        }
    }

    /// The connection ends: `clean` leaves at once, otherwise after the grace period.
    pub fn closed(self, clean: bool) {
        self.record(Happened::Closed { clean });
    }
}

/// Why a `presence` command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefused {
    Invalid(String),
    TooFast,
}
