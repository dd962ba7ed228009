//! Presence state in Redis, shared by every replica and every gateway node. A batch of
//! changes is one script call (`lua/commit.lua`): it checks each record's version, writes
//! the records and their indexes, and appends the events to one stream, so state and
//! events never disagree. Idle connections cost nothing: a node renews one lease entry.
//!
//! Keys under the prefix (`keys.rs`): `u:{tenant}` (hash: user → `version:record`, the
//! record in postcard), `on:{tenant}` (online users, lexically ordered),
//! `cm:{tenant}:{channel}` (members), `cc:{tenant}:{channel}` and `pv:{tenant}:{page}`
//! (channel connections, page viewers: counters), `n:{node}` (the node's connections),
//! `leases`, `due`, `log` (events), `epoch`, `cleanup`. The scripts touch keys they compute,
//! so this store needs a single Redis (or one shard), not a cluster.

use std::{fmt::Display, time::Duration};

use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::keys::Key;
use crate::biz::{
    engine::Change,
    model::{UserKey, UserRecord},
    store::{Committed, Cursor, Fetched, LogEntry, LogRead, PresenceStore, StoreError},
};

/// Ids in keys and members are joined with the ASCII unit separator, which input validation
/// keeps out of tenants, users and connection ids.
const SEP: char = '\u{1f}';
/// Log entries (batches) read per call while tailing: each may hold a thousand events.
const TAIL_CHUNK: usize = 100;
/// Lapsed nodes claimed per cleanup call.
const CLAIM_NODES: usize = 100;

/// Records a read fetches on one connection; more are split over two.
const SPLIT_READ: usize = 256;
/// How long a command may take before the store reports Redis unavailable. A commit that
/// timed out may still have been written; the version checks make its retry safe.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisStore {
    /// Every command but the log wait, multiplexed on one connection that reconnects by
    /// itself: a pool would check each connection out with a PING, a round trip per call.
    shared: ConnectionManager,
    /// The second half of a large read: each connection's replies are parsed by its own
    /// task, so the halves are received and decoded on two cores at once.
    second: ConnectionManager,
    /// `XREAD BLOCK` holds its connection until entries arrive, so it has one of its own,
    /// without a response timeout.
    waits: ConnectionManager,
    prefix: String,
    log_max_len: usize,
    commit: Script,
    read_log: Script,
    log_head: Script,
    claim_lapsed: Script,
    renew_lease: Script,
    hold_lock: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn new_epoch() -> String {
    format!("r{:016x}", rand::random::<u64>())
}

impl RedisStore {
    /// Connects, failing at start when Redis is unreachable.
    pub async fn connect(url: &str, prefix: &str, log_max_len: usize) -> Result<Self, StoreError> {
        // Many callers share the connection: with Nagle on (redis-rs's default), a command
        // written while another is unacknowledged waits for an ACK, up to the peer's
        // delayed-ACK timer (~40 ms).
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(unavailable)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(unavailable)?;
        let timed = ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        let shared = ConnectionManager::new_with_config(client.clone(), timed.clone())
            .await
            .map_err(unavailable)?;
        let second = ConnectionManager::new_with_config(client.clone(), timed)
            .await
            .map_err(unavailable)?;
        let waits =
            ConnectionManager::new_with_config(client, ConnectionManagerConfig::new().set_response_timeout(None))
                .await
                .map_err(unavailable)?;
        let store = Self {
            shared,
            second,
            waits,
            prefix: prefix.to_owned(),
            log_max_len: log_max_len.max(1),
            commit: Script::new(include_str!("lua/commit.lua")),
            read_log: Script::new(include_str!("lua/read_log.lua")),
            log_head: Script::new(include_str!("lua/log_head.lua")),
            claim_lapsed: Script::new(include_str!("lua/claim_lapsed.lua")),
            renew_lease: Script::new(include_str!("lua/renew_lease.lua")),
            hold_lock: Script::new(include_str!("lua/hold_lock.lua")),
        };
        let mut conn = store.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(store)
    }

    fn conn(&self) -> ConnectionManager {
        self.shared.clone()
    }

    fn key(&self, name: impl Display) -> String {
        format!("{}{name}", self.prefix)
    }

    fn entries(&self, epoch: &str, raw: &[Vec<u8>]) -> Result<Vec<LogEntry>, StoreError> {
        raw.chunks(2)
            .map(|pair| {
                let [id, data] = pair else {
                    return Err(corrupt("odd log reply"));
                };
                Ok(LogEntry {
                    cursor: Cursor {
                        epoch: epoch.to_owned(),
                        id: String::from_utf8_lossy(id).into_owned(),
                    },
                    diffs: super::commit_batch::decode_events(data)?,
                })
            })
            .collect()
    }
}

/// `<version>:<postcard bytes>`: the commit script reads the version, nothing else.
fn encode_record(record: &UserRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = format!("{}:", record.version).into_bytes();
    out = postcard::to_extend(record, out).map_err(corrupt)?;
    Ok(out)
}

/// The version a stored value begins with, and the record's bytes after it.
fn split_record(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let colon = value
        .iter()
        .position(|byte| *byte == b':')
        .ok_or_else(|| corrupt("record without a version"))?;
    let version = std::str::from_utf8(&value[..colon])
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| corrupt("record with a malformed version"))?;
    Ok((version, &value[colon + 1..]))
}

fn user_of(member: &str) -> Option<UserKey> {
    let mut parts = member.split(SEP);
    Some(UserKey::new(parts.next()?, parts.next()?))
}

/// The records of `keys` on `conn`: one HMGET per tenant, in one round trip; a record whose
/// version is the one `held` gives is not decoded. Owns what it needs, so that a large read
/// can run its halves as tasks of their own.
async fn fetch_records(
    mut conn: ConnectionManager,
    prefix: String,
    keys: Vec<UserKey>,
    held: Vec<u64>,
) -> Result<Vec<Fetched>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut tenants: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        match tenants.iter_mut().find(|(tenant, _)| *tenant == key.tenant) {
            Some((_, indexes)) => indexes.push(index),
            None => tenants.push((&key.tenant, vec![index])),
        }
    }
    let mut pipe = redis::pipe();
    for (tenant, indexes) in &tenants {
        let mut command = redis::cmd("HMGET");
        command.arg(format!("{prefix}{}", Key::Records(tenant)));
        for index in indexes {
            command.arg(&keys[*index].user);
        }
        pipe.add_command(command);
    }
    let replies: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
    let mut records = vec![Fetched::Missing; keys.len()];
    for ((_, indexes), values) in tenants.iter().zip(replies) {
        for (index, value) in indexes.iter().zip(values) {
            let Some(value) = value else { continue };
            let (version, record) = split_record(&value)?;
            records[*index] = if held[*index] == version {
                Fetched::Held
            } else {
                Fetched::Record(postcard::from_bytes(record).map_err(corrupt)?)
            };
        }
    }
    Ok(records)
}

#[async_trait::async_trait]
impl PresenceStore for RedisStore {
    async fn fetch(&self, keys: &[UserKey], held: &[u64]) -> Result<Vec<Fetched>, StoreError> {
        let held = |range: std::ops::Range<usize>| -> Vec<u64> {
            range.map(|index| held.get(index).copied().unwrap_or(0)).collect()
        };
        if keys.len() <= SPLIT_READ {
            return fetch_records(self.conn(), self.prefix.clone(), keys.to_vec(), held(0..keys.len())).await;
        }
        let half = keys.len() / 2;
        let second = tokio::spawn(fetch_records(
            self.second.clone(),
            self.prefix.clone(),
            keys[half..].to_vec(),
            held(half..keys.len()),
        ));
        let mut records = fetch_records(self.conn(), self.prefix.clone(), keys[..half].to_vec(), held(0..half)).await?;
        records.extend(second.await.map_err(unavailable)??);
        Ok(records)
    }

    async fn commit(&self, changes: &[Change]) -> Result<Committed, StoreError> {
        let mut command = redis::cmd("EVALSHA");
        command.arg(self.commit.get_hash()).arg(0);
        let checked = super::commit_batch::encode(
            &mut command,
            &self.prefix,
            self.log_max_len,
            &new_epoch(),
            changes,
            encode_record,
        )?;
        let mut conn = self.conn();
        let reply: Vec<redis::Value> = match command.query_async(&mut conn).await {
            Err(error) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // A restarted or flushed Redis forgot the script: load it and call again.
                self.commit.load_async(&mut conn).await.map_err(unavailable)?;
                command.query_async(&mut conn).await.map_err(unavailable)?
            }
            reply => reply.map_err(unavailable)?,
        };
        let mut reply = reply.into_iter();
        let cursor: String = match reply.next() {
            Some(value) => redis::from_redis_value(value).map_err(corrupt)?,
            None => String::new(),
        };
        let conflicts = reply
            .map(|value| {
                let position: usize = redis::from_redis_value(value).map_err(corrupt)?;
                checked
                    .get(position)
                    .copied()
                    .ok_or_else(|| corrupt("a conflict outside the batch"))
            })
            .collect::<Result<Vec<usize>, StoreError>>()?;
        Ok(Committed {
            conflicts,
            cursor: Cursor::parse(&cursor),
        })
    }

    async fn renew_lease(&self, node: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let known: i64 = self
            .renew_lease
            .arg(&self.prefix)
            .arg(node)
            .arg(now_ms.saturating_add(ttl_ms))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(known == 1)
    }

    async fn claim_lapsed_nodes(&self, now_ms: i64) -> Result<Vec<(String, Vec<UserKey>)>, StoreError> {
        let mut conn = self.conn();
        let reply: Vec<String> = self
            .claim_lapsed
            .arg(&self.prefix)
            .arg(now_ms)
            .arg(CLAIM_NODES)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut rest = reply.into_iter();
        while let Some(node) = rest.next() {
            let count: usize = rest.next().and_then(|count| count.parse().ok()).unwrap_or(0);
            let mut users: Vec<UserKey> = rest.by_ref().take(count).filter_map(|m| user_of(&m)).collect();
            users.sort();
            users.dedup();
            out.push((node, users));
        }
        Ok(out)
    }

    async fn due_users(&self, now_ms: i64, limit: usize) -> Result<Vec<UserKey>, StoreError> {
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(Key::Due))
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(members.iter().filter_map(|member| user_of(member)).collect())
    }

    async fn hold_cleanup_lock(&self, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let held: i64 = self
            .hold_lock
            .arg(self.key("cleanup"))
            .arg(holder)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }

    async fn online_users(&self, tenant: &str, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.range_lex(Key::Online(tenant), after, limit).await
    }

    async fn online_count(&self, tenant: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        redis::cmd("ZCARD")
            .arg(self.key(Key::Online(tenant)))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn channel_members(
        &self,
        tenant: &str,
        channel: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.range_lex(Key::Members(tenant, channel), after, limit).await
    }

    async fn channel_stats(&self, tenant: &str, channel: &str) -> Result<(i64, i64), StoreError> {
        let mut conn = self.conn();
        let (connections, users): (Option<i64>, i64) = redis::pipe()
            .get(self.key(Key::ChannelConnections(tenant, channel)))
            .zcard(self.key(Key::Members(tenant, channel)))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((connections.unwrap_or(0), users))
    }

    async fn page_viewers(&self, tenant: &str, page: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let viewers: Option<i64> = redis::cmd("GET")
            .arg(self.key(Key::PageViewers(tenant, page)))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(viewers.unwrap_or(0))
    }

    async fn log_head(&self) -> Result<Cursor, StoreError> {
        let mut conn = self.conn();
        let (epoch, id): (String, String) = self
            .log_head
            .arg(&self.prefix)
            .arg(new_epoch())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Cursor { epoch, id })
    }

    async fn read_log(&self, after: &Cursor, limit: usize) -> Result<LogRead, StoreError> {
        let mut conn = self.conn();
        let reply: Vec<Vec<u8>> = self
            .read_log
            .arg(&self.prefix)
            .arg(&after.epoch)
            .arg(&after.id)
            .arg(limit.clamp(1, 100_000))
            .arg(new_epoch())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match reply.split_first() {
            Some((status, rest)) if status == b"ok" => Ok(LogRead::Entries(self.entries(&after.epoch, rest)?)),
            _ => Ok(LogRead::Gap),
        }
    }

    async fn wait_log(&self, after: &Cursor, wait_ms: u64) -> Result<LogRead, StoreError> {
        {
            let mut conn = self.waits.clone();
            // Only waits: what arrived is read below, where gaps are detected.
            let _: redis::Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(wait_ms.max(1))
                .arg("STREAMS")
                .arg(self.key("log"))
                .arg(&after.id)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        self.read_log(after, TAIL_CHUNK).await
    }
}

impl RedisStore {
    async fn range_lex(&self, key: Key<'_>, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let start = if after.is_empty() {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let mut conn = self.conn();
        redis::cmd("ZRANGEBYLEX")
            .arg(self.key(key))
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}
