//! `WatchPresence`: each replica tails the store's event log once and fans entries out to
//! its watchers. A watcher starts from a snapshot (or resumes after a cursor), then gets
//! every diff about its users and channels. Whenever it cannot be sure it saw everything —
//! the log was trimmed past its cursor, the log was lost, or it fell behind the fan-out —
//! it gets a fresh snapshot instead of a silent gap.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    engine::Diff,
    error::PresenceResult,
    store::{Cursor, LogEntry, LogRead, StoreError},
    tracker::{Member, Tracker},
    view::{Audience, Detail, Presence},
};

/// Diffs a replica buffers per watcher before the watcher counts as behind.
const FEED_CAPACITY: usize = 4_096;
/// Entries read from the log per call when a watcher resumes.
const RESUME_CHUNK: usize = 1_000;
/// Members listed per channel in a snapshot at most.
const SNAPSHOT_MEMBERS: usize = 10_000;
/// How long a watcher waits for the log to be read before it is told it cannot be.
const JOIN_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
enum FeedItem {
    Entry(Arc<LogEntry>),
    /// The log was lost: everyone re-snapshots.
    Reset,
}

/// The replica's one reader of the event log. It reads only while someone watches: with
/// nobody to hand them to, reading and decoding every batch of a busy log is wasted work on
/// this replica and on Redis.
///
/// A watcher must not miss what happens after its snapshot, so whenever the tail starts
/// (again) it begins at the log's head as read after every waiting watcher joined, and
/// watchers that joined an idle feed wait for that before they take their snapshots.
#[derive(Debug, Clone)]
pub struct Feed {
    sender: broadcast::Sender<FeedItem>,
    /// Orders a watcher joining against the tail going idle.
    gate: Arc<Mutex<()>>,
    /// Whether the tail reads from a position no later than any snapshot taken from now on.
    tailing: Arc<tokio::sync::watch::Sender<bool>>,
    /// A watcher joined while the tail was idle.
    joined: Arc<Notify>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(FEED_CAPACITY).0,
            gate: Arc::default(),
            tailing: Arc::new(tokio::sync::watch::channel(false).0),
            joined: Arc::default(),
        }
    }

    /// Subscribes a watcher; returns once the tail reads from where the watcher will start,
    /// or fails when the log stays unreadable for `JOIN_WAIT`.
    async fn join(&self) -> PresenceResult<broadcast::Receiver<FeedItem>> {
        let (receiver, mut tailing) = {
            let _gate = self
                .gate
                .lock()
                .map_err(|_| StoreError::Corrupt("the presence feed's lock was poisoned".to_owned()))?;
            (self.sender.subscribe(), self.tailing.subscribe())
        };
        if !*tailing.borrow_and_update() {
            self.joined.notify_one();
        }
        let unreadable = || StoreError::Unavailable("the presence event log cannot be read".to_owned());
        match tokio::time::timeout(JOIN_WAIT, tailing.wait_for(|tailing| *tailing)).await {
            Ok(Ok(_)) => Ok(receiver),
            _ => Err(unreadable().into()),
        }
    }

    /// Goes idle when nobody watches; the tail then forgets its position.
    fn idle_if_unwatched(&self) -> bool {
        let Ok(_gate) = self.gate.lock() else {
            return false;
        };
        let unwatched = self.sender.receiver_count() == 0;
        if unwatched {
            self.tailing.send_replace(false);
        }
        unwatched
    }

    /// Reads the log until `stop`, handing each entry to the watchers.
    pub async fn tail(self, tracker: Arc<Tracker>, stop: CancellationToken) {
        let store = tracker.store().clone();
        let mut last = None;
        while !stop.is_cancelled() {
            if self.idle_if_unwatched() {
                last = None;
                tokio::select! {
                    () = self.joined.notified() => {}
                    () = stop.cancelled() => return,
                }
                continue;
            }
            let after = match &last {
                Some(cursor) => cursor,
                None => match store.log_head().await {
                    Ok(head) => {
                        last = Some(head);
                        self.tailing.send_replace(true);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading the presence event log");
                        pause(&stop).await;
                        continue;
                    }
                },
            };
            let read = tokio::select! {
                read = store.wait_log(after, 1_000) => read,
                () = stop.cancelled() => return,
            };
            match read {
                Ok(LogRead::Entries(entries)) => {
                    for entry in entries {
                        last = Some(entry.cursor.clone());
                        let _ = self.sender.send(FeedItem::Entry(Arc::new(entry)));
                    }
                }
                Ok(LogRead::Gap) => {
                    tracing::warn!("the presence event log was lost; watchers get fresh snapshots");
                    last = None;
                    let _ = self.sender.send(FeedItem::Reset);
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the presence event log");
                    pause(&stop).await;
                }
            }
        }
    }
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(500)) => {}
        () = stop.cancelled() => {}
    }
}

/// What a watcher asked for.
#[derive(Debug, Clone)]
pub struct Subject {
    pub tenant: String,
    pub users: HashSet<String>,
    pub channels: HashSet<String>,
    pub audience: Audience,
}

impl Subject {
    fn wants(&self, diff: &Diff) -> bool {
        if diff.tenant != self.tenant {
            return false;
        }
        match &diff.channel {
            None => self.users.contains(&diff.user),
            Some(channel) => self.channels.contains(channel),
        }
    }
}

/// What a watcher receives.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Snapshot {
        cursor: Cursor,
        users: Vec<Presence>,
        channels: Vec<(String, Vec<Member>)>,
    },
    Diff {
        cursor: Cursor,
        diff: Box<Diff>,
    },
}

/// Streams `subject`'s snapshot and diffs into `out` until the receiver goes or `stop`.
pub async fn watch(
    tracker: Arc<Tracker>,
    feed: Feed,
    subject: Subject,
    resume: Option<Cursor>,
    out: mpsc::Sender<PresenceResult<WatchItem>>,
    stop: CancellationToken,
) {
    let joined = tokio::select! {
        joined = feed.join() => joined,
        () = stop.cancelled() => return,
        () = out.closed() => return,
    };
    let mut live = match joined {
        Ok(live) => live,
        Err(error) => {
            let _ = out.send(Err(error)).await;
            return;
        }
    };
    let mut last = match resume {
        Some(cursor) => replay(&tracker, &subject, cursor, &out).await,
        None => None,
    };
    loop {
        let Some(position) = last.clone() else {
            match snapshot(&tracker, &subject).await {
                Ok(item) => {
                    if let WatchItem::Snapshot { cursor, .. } = &item {
                        last = Some(cursor.clone());
                    }
                    if out.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = out.send(Err(error)).await;
                    return;
                }
            }
            continue;
        };
        let item = tokio::select! {
            item = live.recv() => item,
            () = stop.cancelled() => return,
            () = out.closed() => return,
        };
        match item {
            Ok(FeedItem::Entry(entry)) => {
                if entry.cursor.epoch != position.epoch {
                    last = None;
                    continue;
                }
                if entry.cursor.position() <= position.position() {
                    continue;
                }
                last = Some(entry.cursor.clone());
                if !send_entry(&subject, &entry, &out).await {
                    return;
                }
            }
            Ok(FeedItem::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => last = None,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends the diffs after `cursor` from the log; None when the log cannot (a snapshot follows).
async fn replay(
    tracker: &Tracker,
    subject: &Subject,
    cursor: Cursor,
    out: &mpsc::Sender<PresenceResult<WatchItem>>,
) -> Option<Cursor> {
    let mut last = cursor;
    loop {
        let entries = match tracker.store().read_log(&last, RESUME_CHUNK).await {
            Ok(LogRead::Entries(entries)) => entries,
            Ok(LogRead::Gap) | Err(_) => return None,
        };
        let count = entries.len();
        for entry in entries {
            if !send_entry(subject, &entry, out).await {
                return None;
            }
            last = entry.cursor;
        }
        if count < RESUME_CHUNK {
            return Some(last);
        }
    }
}

async fn send_entry(subject: &Subject, entry: &LogEntry, out: &mpsc::Sender<PresenceResult<WatchItem>>) -> bool {
    for diff in entry.diffs.iter().filter(|diff| subject.wants(diff)) {
        let item = WatchItem::Diff {
            cursor: entry.cursor.clone(),
            diff: Box::new(diff.clone()),
        };
        if out.send(Ok(item)).await.is_err() {
            return false;
        }
    }
    true
}

/// The subject's state now, with the log position it is consistent with (at least).
async fn snapshot(tracker: &Tracker, subject: &Subject) -> PresenceResult<WatchItem> {
    let cursor = tracker.store().log_head().await?;
    let users: Vec<String> = subject.users.iter().cloned().collect();
    let users = tracker
        .get_many(&subject.tenant, &users, subject.audience, Detail::Connections)
        .await?
        .into_iter()
        .map(|(presence, _)| presence)
        .collect();
    let mut channels = Vec::new();
    for channel in &subject.channels {
        let (members, _) = tracker
            .channel_members(&subject.tenant, channel, "", SNAPSHOT_MEMBERS)
            .await?;
        channels.push((channel.clone(), members));
    }
    Ok(WatchItem::Snapshot {
        cursor,
        users,
        channels,
    })
}
