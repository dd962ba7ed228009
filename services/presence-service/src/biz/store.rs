//! What presence state needs from its storage — Redis, so every replica and gateway node
//! sees the same thing, or memory for a single node — and from the database that keeps
//! last seen / last active beyond Redis. Both stores implement exactly this contract, and
//! the same tests run against both.

use std::fmt;

use super::{
    engine::{Change, Diff},
    model::{LastSeen, UserKey, UserRecord},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("presence storage unavailable: {0}")]
    Unavailable(String),
    #[error("presence storage holds an unreadable record: {0}")]
    Corrupt(String),
}

/// A position in the event log: the log's epoch (it changes when the log is lost, as when
/// Redis restarts) and an entry id within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    /// `<ms>-<seq>`, ordered as Redis stream ids are.
    pub id: String,
}

impl Cursor {
    /// Parses what [`Cursor`]'s `Display` wrote.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (epoch, id) = text.split_once('/')?;
        stream_id(id)?;
        Some(Cursor {
            epoch: epoch.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The id as a comparable pair.
    pub fn position(&self) -> (u64, u64) {
        stream_id(&self.id).unwrap_or((0, 0))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.epoch, self.id)
    }
}

pub fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// One committed batch of events.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub cursor: Cursor,
    pub diffs: Vec<Diff>,
}

/// What reading the log after a cursor found.
#[derive(Debug)]
pub enum LogRead {
    /// Every entry after the cursor (possibly none).
    Entries(Vec<LogEntry>),
    /// The log no longer reaches back to the cursor (trimmed, or another epoch).
    Gap,
}

/// The outcome of a commit.
#[derive(Debug, Default)]
pub struct Committed {
    /// Indexes of the changes whose record changed meanwhile. When there are any, nothing
    /// was written: the batch is recomputed and committed again.
    pub conflicts: Vec<usize>,
    /// The log entry holding the written changes' events, if there were any.
    pub cursor: Option<Cursor>,
}

/// What a read found of one record, given the version the reader already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Missing,
    /// The stored record is the version the reader holds: it was not decoded again.
    Held,
    Record(UserRecord),
}

/// Presence state shared by every replica.
#[async_trait::async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// The stored records, in the order of `keys`; where `held` gives the version the
    /// reader already holds (0: none) and it is still the stored one, `Fetched::Held`.
    async fn fetch(&self, keys: &[UserKey], held: &[u64]) -> Result<Vec<Fetched>, StoreError>;

    /// The stored records, in the order of `keys`.
    async fn load(&self, keys: &[UserKey]) -> Result<Vec<Option<UserRecord>>, StoreError> {
        let fetched = self.fetch(keys, &vec![0; keys.len()]).await?;
        Ok(fetched
            .into_iter()
            .map(|fetched| match fetched {
                Fetched::Record(record) => Some(record),
                Fetched::Missing | Fetched::Held => None,
            })
            .collect())
    }

    /// Writes every change, with its index changes, and appends their events to the log, all
    /// in one step — or, when any record no longer has its expected version, writes nothing.
    async fn commit(&self, changes: &[Change]) -> Result<Committed, StoreError>;

    /// Renews a node's lease until `now_ms + ttl_ms`. False when the store held no lease for
    /// it (first contact, a lapsed lease, or lost state): the node must resend its connections.
    async fn renew_lease(&self, node: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError>;

    /// Takes the leases that lapsed by `now_ms` away from their nodes, each with the users
    /// that held connections on it. A node taken cannot renew any more: it resends.
    async fn claim_lapsed_nodes(&self, now_ms: i64) -> Result<Vec<(String, Vec<UserKey>)>, StoreError>;

    /// Users whose record is due by `now_ms` (see `UserRecord::due_ms`), at most `limit`.
    async fn due_users(&self, now_ms: i64, limit: usize) -> Result<Vec<UserKey>, StoreError>;

    /// Holds (or keeps holding) the lock that lets one replica do cleanup, for `ttl_ms`.
    async fn hold_cleanup_lock(&self, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;

    /// Online users of the tenant in id order, after `after`.
    async fn online_users(&self, tenant: &str, after: &str, limit: usize) -> Result<Vec<String>, StoreError>;
    async fn online_count(&self, tenant: &str) -> Result<i64, StoreError>;

    /// Channel members in id order, after `after`.
    async fn channel_members(
        &self,
        tenant: &str,
        channel: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// (connections, unique users) of a channel.
    async fn channel_stats(&self, tenant: &str, channel: &str) -> Result<(i64, i64), StoreError>;
    async fn page_viewers(&self, tenant: &str, page: &str) -> Result<i64, StoreError>;

    /// The log's last position (where a snapshot taken now stands).
    async fn log_head(&self) -> Result<Cursor, StoreError>;
    /// Entries after `after`, at most `limit`.
    async fn read_log(&self, after: &Cursor, limit: usize) -> Result<LogRead, StoreError>;
    /// Waits up to `wait_ms` for entries after `after`.
    async fn wait_log(&self, after: &Cursor, wait_ms: u64) -> Result<LogRead, StoreError>;
}

/// Last seen / last active, kept in the service's database.
#[async_trait::async_trait]
pub trait LastSeenRepository: Send + Sync + 'static {
    /// Keeps the later of what is stored and what is given, per user.
    async fn save(&self, batch: &[(UserKey, LastSeen)]) -> Result<(), StoreError>;
    async fn load(&self, tenant: &str, users: &[String]) -> Result<Vec<(String, LastSeen)>, StoreError>;
}
