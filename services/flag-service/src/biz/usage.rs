//! What evaluations tell the rest of the platform: per-flag, per-variant counts with the last
//! evaluation time (for the stale-flag report), and exposure records for experiments.
//!
//! Counting is in memory on the evaluation path and flushed to storage in the background.
//! Exposures are emitted for flags bound to an experiment (flag metadata `experiment`); they go
//! through a bounded queue that evaluation never waits on — when it is full the record is
//! dropped and counted — and are handed to an [`ExposureSink`] in batches.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use switchyard_platform::Shutdown;
use tokio::sync::mpsc;

use super::{
    model::parse_name,
    repository::{FlagRepository, UsageRow},
};

/// The metadata key that binds a flag to an experiment.
pub const EXPERIMENT_KEY: &str = "experiment";

/// Flags tracked per process at most; evaluations of further flags are not counted.
const MAX_TRACKED: usize = 100_000;

/// One evaluation of a flag bound to an experiment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub tenant: String,
    pub experiment: String,
    /// The flag set (`projects/{p}/environments/{e}`, or a flag file).
    pub flag_set: String,
    pub flag: String,
    pub variant: String,
    pub targeting_key: String,
    pub timestamp_ms: i64,
    /// The evaluation context's attributes with string, number or boolean values (at most
    /// [`MAX_EXPOSURE_ATTRIBUTES`]): experiment-service re-checks with them that the unit is
    /// in the experiment (a unit outside its coverage is served the flag's own value and is
    /// no exposure), and breaks results down by them.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// Attributes an exposure carries at most.
pub const MAX_EXPOSURE_ATTRIBUTES: usize = 32;

/// Where batches of exposures go (the change bus, towards experiment-service).
pub trait ExposureSink: Send + Sync + 'static {
    fn deliver(&self, batch: Vec<Exposure>) -> impl Future<Output = Result<(), String>> + Send;
}

/// Counts accumulated since the last flush, for one flag in one flag set.
#[derive(Debug, Default)]
struct Counter {
    by_variant: Mutex<HashMap<String, u64>>,
    last_ms: AtomicI64,
}

/// Evaluation counts of one flag since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub tenant: String,
    pub flag_set: String,
    pub flag: String,
    /// Variant → evaluations; `""` counts evaluations that served no variant.
    pub counts: HashMap<String, u64>,
    pub last_ms: i64,
}

/// tenant → flag set → flag → counter.
type Counters = HashMap<String, HashMap<String, HashMap<String, Arc<Counter>>>>;

/// The usage recorder shared by every protocol.
#[derive(Debug)]
pub struct Usage {
    counters: RwLock<Counters>,
    tracked: AtomicU64,
    exposures: mpsc::Sender<Exposure>,
    dropped: AtomicU64,
}

impl Usage {
    /// A recorder whose exposure queue holds `capacity` records; the receiver feeds
    /// [`Usage::deliver_exposures`].
    pub fn new(capacity: usize) -> (Arc<Self>, mpsc::Receiver<Exposure>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let usage = Self {
            counters: RwLock::default(),
            tracked: AtomicU64::new(0),
            exposures: sender,
            dropped: AtomicU64::new(0),
        };
        (Arc::new(usage), receiver)
    }

    /// Counts one evaluation; never blocks on anything but a short in-memory lock.
    pub fn record(&self, tenant: &str, flag_set: &str, flag: &str, variant: Option<&str>, now_ms: i64) {
        let Some(counter) = self.counter(tenant, flag_set, flag) else {
            return;
        };
        counter.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        let mut counts = counter
            .by_variant
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match counts.get_mut(variant.unwrap_or_default()) {
            Some(count) => *count += 1,
            None => {
                counts.insert(variant.unwrap_or_default().to_owned(), 1);
            }
        }
    }

    fn counter(&self, tenant: &str, flag_set: &str, flag: &str) -> Option<Arc<Counter>> {
        {
            let counters = self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(counter) = counters
                .get(tenant)
                .and_then(|sets| sets.get(flag_set))
                .and_then(|flags| flags.get(flag))
            {
                return Some(counter.clone());
            }
        }
        if self.tracked.load(Ordering::Relaxed) >= MAX_TRACKED as u64 {
            return None;
        }
        let mut counters = self.counters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let flags = counters
            .entry(tenant.to_owned())
            .or_default()
            .entry(flag_set.to_owned())
            .or_default();
        let counter = flags.entry(flag.to_owned()).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::Relaxed);
            Arc::default()
        });
        Some(counter.clone())
    }

    /// Queues an exposure without waiting; a full queue drops it and counts the drop.
    pub fn expose(&self, exposure: Exposure) {
        if self.exposures.try_send(exposure).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exposures dropped because the queue was full.
    pub fn dropped_exposures(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes the counts accumulated since the last call.
    pub fn drain(&self) -> Vec<UsageDelta> {
        let counters = self.counters.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut deltas = Vec::new();
        for (tenant, sets) in counters.iter() {
            for (flag_set, flags) in sets {
                for (flag, counter) in flags {
                    let counts = std::mem::take(
                        &mut *counter
                            .by_variant
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()),
                    );
                    if counts.is_empty() {
                        continue;
                    }
                    deltas.push(UsageDelta {
                        tenant: tenant.clone(),
                        flag_set: flag_set.clone(),
                        flag: flag.clone(),
                        counts,
                        last_ms: counter.last_ms.load(Ordering::Relaxed),
                    });
                }
            }
        }
        deltas
    }

    /// Hands queued exposures to `sink` in batches of at most `batch` records, at least every
    /// `linger`, until shutdown (then flushes what is queued).
    pub async fn deliver_exposures<S: ExposureSink>(
        mut receiver: mpsc::Receiver<Exposure>,
        sink: S,
        batch: usize,
        linger: Duration,
        shutdown: Shutdown,
    ) {
        let batch = batch.max(1);
        let mut pending = Vec::with_capacity(batch);
        loop {
            let deadline = tokio::time::sleep(linger);
            tokio::pin!(deadline);
            let stop = loop {
                tokio::select! {
                    received = receiver.recv() => match received {
                        Some(exposure) => {
                            pending.push(exposure);
                            if pending.len() >= batch {
                                break false;
                            }
                        }
                        None => break true,
                    },
                    _ = &mut deadline => break false,
                    _ = shutdown.cancelled() => break true,
                }
            };
            if stop {
                while let Ok(exposure) = receiver.try_recv() {
                    pending.push(exposure);
                }
            }
            if !pending.is_empty() {
                let records = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                let count = records.len();
                if let Err(error) = sink.deliver(records).await {
                    tracing::warn!(%error, count, "exposures could not be delivered");
                }
            }
            if stop {
                return;
            }
        }
    }
}

/// Writes the counts of managed flags (flag sets `projects/{p}/environments/{e}`) to storage
/// every `interval`, and once more at shutdown. Counts of flag-file flags stay in memory.
pub async fn flush_every<R: FlagRepository>(
    usage: Arc<Usage>,
    repository: Arc<R>,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let rows = rows(usage.drain());
        if !rows.is_empty()
            && let Err(error) = repository.record_usage(&rows).await
        {
            tracing::warn!(%error, flags = rows.len(), "flag usage could not be stored; these counts are lost");
        }
        if stopping {
            return;
        }
    }
}

fn rows(deltas: Vec<UsageDelta>) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    for delta in deltas {
        let Ok(ids) = parse_name("flagSetId", &delta.flag_set, "projects/*/environments/*") else {
            continue;
        };
        for (variant, count) in delta.counts {
            rows.push(UsageRow {
                tenant: delta.tenant.clone(),
                project: ids[0].clone(),
                environment: ids[1].clone(),
                flag: delta.flag.clone(),
                variant,
                evaluations: i64::try_from(count).unwrap_or(i64::MAX),
                last_ms: delta.last_ms,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_variant_and_drains_once() {
        let (usage, _exposures) = Usage::new(4);
        usage.record("acme", "projects/shop/environments/prod", "banner", Some("on"), 10);
        usage.record("acme", "projects/shop/environments/prod", "banner", Some("on"), 30);
        usage.record("acme", "projects/shop/environments/prod", "banner", None, 20);
        let deltas = usage.drain();
        assert_eq!(deltas.len(), 1);
        assert_eq!(
            deltas[0].counts,
            HashMap::from([("on".to_owned(), 2), (String::new(), 1)])
        );
        assert_eq!(deltas[0].last_ms, 30);
        assert!(usage.drain().is_empty());
    }

    #[test]
    fn a_full_exposure_queue_drops_and_counts() {
        let (usage, _exposures) = Usage::new(2);
        let exposure = Exposure {
            tenant: "acme".into(),
            experiment: "checkout".into(),
            flag_set: "s".into(),
            flag: "f".into(),
            variant: "a".into(),
            targeting_key: "u".into(),
            timestamp_ms: 0,
            context: Default::default(),
        };
        for _ in 0..5 {
            usage.expose(exposure.clone());
        }
        assert_eq!(usage.dropped_exposures(), 3);
    }
}
