//! The audit trail every service keeps: one record per mutation, written in the same
//! transaction as the change, chained by SHA-256 so that an altered or removed record is
//! detectable. Each tenant has its own chain; `audit_heads` holds its latest link and is
//! updated in the writing transaction, which serialises appends per tenant on both backends.
//!
//! A record's hash covers the previous hash and every field, so rewriting one record breaks
//! the link to the next, and deleting one leaves a gap in the sequence.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyPool, Row};

/// The first record's `previous_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a mutation tells the trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub tenant: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub before_digest: Option<String>,
    pub after_digest: Option<String>,
    pub request_id: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub sequence: i64,
    pub entry: AuditEntry,
    pub created_ms: i64,
    pub previous_hash: String,
    pub hash: String,
}

/// Which records to read: a resource prefix, an actor, a `[start, end)` time range in Unix ms,
/// and keyset pagination by sequence.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub resource_prefix: Option<String>,
    pub actor: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Newest first, below this sequence.
    pub before_sequence: Option<i64>,
    /// Oldest first, above this sequence.
    pub after_sequence: Option<i64>,
    pub limit: i64,
}

/// The outcome of re-walking a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records_checked: u64,
    /// The first record that does not fit, and why.
    pub broken: Option<(i64, String)>,
}

/// Appends `entry` to its tenant's chain inside the caller's transaction.
pub async fn append(conn: &mut AnyConnection, entry: &AuditEntry, now_ms: i64) -> Result<AuditRecord, sqlx::Error> {
    let (sequence, previous_hash) = match advance_head(conn, &entry.tenant).await? {
        Some(head) => head,
        None => {
            // The tenant's first record: create its head. Concurrent first writers both get
            // past this insert and then queue on the row lock of the update.
            sqlx::query(
                "INSERT INTO audit_heads (tenant, sequence, hash) VALUES ($1, 0, $2) ON CONFLICT (tenant) DO NOTHING",
            )
            .bind(&entry.tenant)
            .bind(GENESIS)
            .execute(&mut *conn)
            .await?;
            advance_head(conn, &entry.tenant)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?
        }
    };
    let hash = link_hash(&previous_hash, sequence, entry, now_ms);
    sqlx::query(
        "INSERT INTO audit_log (tenant, sequence, actor, action, resource, before_digest, after_digest, request_id, \
         created_ms, previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&entry.tenant)
    .bind(sequence)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.resource)
    .bind(&entry.before_digest)
    .bind(&entry.after_digest)
    .bind(&entry.request_id)
    .bind(now_ms)
    .bind(&previous_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_heads SET hash = $1 WHERE tenant = $2")
        .bind(&hash)
        .bind(&entry.tenant)
        .execute(&mut *conn)
        .await?;
    Ok(AuditRecord {
        sequence,
        entry: entry.clone(),
        created_ms: now_ms,
        previous_hash,
        hash,
    })
}

/// Takes the tenant's next sequence number (locking its head until the transaction ends)
/// and returns it with the previous record's hash.
async fn advance_head(conn: &mut AnyConnection, tenant: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    let head = sqlx::query("UPDATE audit_heads SET sequence = sequence + 1 WHERE tenant = $1 RETURNING sequence, hash")
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
    match head {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
        None => Ok(None),
    }
}

/// The hash of one link: SHA-256 over the previous hash and every field, each length-prefixed
/// so that no two different records serialise alike.
pub fn link_hash(previous_hash: &str, sequence: i64, entry: &AuditEntry, created_ms: i64) -> String {
    let mut hasher = Sha256::new();
    let sequence = sequence.to_string();
    let created = created_ms.to_string();
    let fields = [
        previous_hash,
        &sequence,
        &entry.tenant,
        &entry.actor,
        &entry.action,
        &entry.resource,
        entry.before_digest.as_deref().unwrap_or(""),
        entry.after_digest.as_deref().unwrap_or(""),
        entry.request_id.as_deref().unwrap_or(""),
        &created,
    ];
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

const COLUMNS: &str = "sequence, tenant, actor, action, resource, before_digest, after_digest, request_id, created_ms, \
                       previous_hash, hash";

/// Records of `tenant` matching `filter`.
pub async fn list(pool: &AnyPool, tenant: &str, filter: &AuditFilter) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let oldest_first = filter.after_sequence.is_some();
    let order = if oldest_first { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant = $1 \
         AND ($2 = '' OR substr(resource, 1, length($2)) = $2) AND ($3 = '' OR actor = $3) \
         AND created_ms >= $4 AND created_ms < $5 AND sequence < $6 AND sequence > $7 \
         ORDER BY sequence {order} LIMIT $8"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(filter.resource_prefix.as_deref().unwrap_or(""))
        .bind(filter.actor.as_deref().unwrap_or(""))
        .bind(filter.start_ms.unwrap_or(i64::MIN))
        .bind(filter.end_ms.unwrap_or(i64::MAX))
        .bind(filter.before_sequence.unwrap_or(i64::MAX))
        .bind(filter.after_sequence.unwrap_or(0))
        .bind(filter.limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_of).collect()
}

fn record_of(row: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        sequence: row.try_get("sequence")?,
        entry: AuditEntry {
            tenant: row.try_get("tenant")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            before_digest: row.try_get("before_digest")?,
            after_digest: row.try_get("after_digest")?,
            request_id: row.try_get("request_id")?,
        },
        created_ms: row.try_get("created_ms")?,
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
    })
}

const VERIFY_BATCH: i64 = 1000;

/// Walks `tenant`'s whole chain from the first record and checks every link, the sequence
/// (no gaps) and that the head points at the last record.
pub async fn verify(pool: &AnyPool, tenant: &str) -> Result<ChainReport, sqlx::Error> {
    let mut expected_previous = GENESIS.to_owned();
    let mut expected_sequence = 1;
    let mut checked = 0;
    loop {
        let filter = AuditFilter {
            after_sequence: Some(expected_sequence - 1),
            limit: VERIFY_BATCH,
            ..AuditFilter::default()
        };
        let batch = list(pool, tenant, &filter).await?;
        let done = (batch.len() as i64) < VERIFY_BATCH;
        for record in batch {
            if let Some(broken) = check_link(&record, expected_sequence, &expected_previous) {
                return Ok(ChainReport {
                    records_checked: checked,
                    broken: Some(broken),
                });
            }
            checked += 1;
            expected_sequence += 1;
            expected_previous = record.hash;
        }
        if done {
            break;
        }
    }
    let head: Option<(i64, String)> = sqlx::query_as("SELECT sequence, hash FROM audit_heads WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    let last = expected_sequence - 1;
    let broken = match head {
        Some((sequence, hash)) if sequence != last || hash != expected_previous => Some((
            last + 1,
            format!("records after sequence {last} are missing (head is at {sequence})"),
        )),
        None if checked > 0 => Some((1, "the chain head is missing".to_owned())),
        _ => None,
    };
    Ok(ChainReport {
        records_checked: checked,
        broken,
    })
}

/// The first problem with `record` as the next link: the sequence it should have had and why.
fn check_link(record: &AuditRecord, expected_sequence: i64, expected_previous: &str) -> Option<(i64, String)> {
    if record.sequence != expected_sequence {
        let problem = format!("record {expected_sequence} is missing (next is {})", record.sequence);
        return Some((expected_sequence, problem));
    }
    if record.previous_hash != expected_previous {
        let problem = "previous_hash does not match the record before it".to_owned();
        return Some((record.sequence, problem));
    }
    let recomputed = link_hash(&record.previous_hash, record.sequence, &record.entry, record.created_ms);
    if recomputed != record.hash {
        let problem = "record content does not match its hash (altered)".to_owned();
        return Some((record.sequence, problem));
    }
    None
}
