//! Last seen / last active in the service's database (PostgreSQL or SQLite), written in
//! batches. Each row keeps the later of the stored and the written times, so replicas may
//! write in any order.

use sqlx::{AnyPool, Row};

use crate::biz::{
    model::{LastSeen, UserKey},
    store::{LastSeenRepository, StoreError},
};

// SQLite looks each parameter's name up by walking the statement's list of names, so a
// statement's binding cost grows with the square of its parameters: a few hundred at most.
/// Rows per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 250;
/// Rows per upsert statement (four parameters each).
const SAVE_CHUNK: usize = 32;

#[derive(Debug, Clone)]
pub struct SqlLastSeen {
    pool: AnyPool,
}

impl SqlLastSeen {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[async_trait::async_trait]
impl LastSeenRepository for SqlLastSeen {
    async fn save(&self, batch: &[(UserKey, LastSeen)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Many rows per statement: a flush after heavy churn is thousands of users. Keys are
        // unique within a batch (it comes from a map), as one statement requires.
        for chunk in batch.chunks(SAVE_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let base = row * 4;
                    format!("(${}, ${}, ${}, ${})", base + 1, base + 2, base + 3, base + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO last_seen (tenant, user_id, seen_ms, active_ms) VALUES {} \
                 ON CONFLICT (tenant, user_id) DO UPDATE SET \
                 seen_ms = CASE WHEN excluded.seen_ms > last_seen.seen_ms THEN excluded.seen_ms ELSE last_seen.seen_ms END, \
                 active_ms = CASE WHEN excluded.active_ms > last_seen.active_ms THEN excluded.active_ms ELSE last_seen.active_ms END",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (key, seen) in chunk {
                query = query
                    .bind(&key.tenant)
                    .bind(&key.user)
                    .bind(seen.seen_ms)
                    .bind(seen.active_ms);
            }
            query.execute(&mut *tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn load(&self, tenant: &str, users: &[String]) -> Result<Vec<(String, LastSeen)>, StoreError> {
        let mut found = Vec::new();
        for chunk in users.chunks(LOOKUP_CHUNK) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|index| format!("${}", index + 2)).collect();
            let sql = format!(
                "SELECT user_id, seen_ms, active_ms FROM last_seen WHERE tenant = $1 AND user_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(tenant);
            for user in chunk {
                query = query.bind(user);
            }
            let rows = query.fetch_all(&self.pool).await.map_err(unavailable)?;
            for row in rows {
                let user: String = row.try_get("user_id").map_err(unavailable)?;
                let seen = LastSeen {
                    seen_ms: row.try_get("seen_ms").map_err(unavailable)?,
                    active_ms: row.try_get("active_ms").map_err(unavailable)?,
                };
                found.push((user, seen));
            }
        }
        Ok(found)
    }
}
