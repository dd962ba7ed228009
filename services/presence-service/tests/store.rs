//! The stores' optimistic concurrency, against real Redis and in memory: a batch computed
//! from records another replica has changed since is written not at all, and the store
//! names exactly the changes that raced, whatever tenants the batch spans.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use presence_service::{
    biz::{
        engine::{self, Change, Op},
        model::{Device, MetasPatch, UserKey, UserRecord},
        store::{Fetched, PresenceStore},
        view::Rules,
    },
    data::{memory::MemoryStore, redis::RedisStore},
};
use switchyard_platform::testing;

const RULES: Rules = Rules {
    offline_grace_ms: 10_000,
    away_after_ms: 300_000,
    last_seen_refresh_ms: 60_000,
};

async fn stores() -> Vec<(&'static str, Arc<dyn PresenceStore>)> {
    let prefix = format!("sy-test:{}:", uuid::Uuid::new_v4().simple());
    let redis = RedisStore::connect(&testing::redis_url(), &prefix, 100).await.unwrap();
    vec![("redis", Arc::new(redis)), ("memory", Arc::new(MemoryStore::new(100)))]
}

fn open(connection: &str) -> Op {
    Op::Open {
        connection: connection.to_owned(),
        node: "node-a".to_owned(),
        device: Device::default(),
        metas: MetasPatch::default(),
        channels: Vec::new(),
    }
}

fn page(connection: &str, page: &str) -> Op {
    Op::Update {
        connection: connection.to_owned(),
        patch: MetasPatch {
            page: Some(page.to_owned()),
            ..MetasPatch::default()
        },
    }
}

fn change(key: &UserKey, before: Option<&UserRecord>, op: Op, now_ms: i64) -> Change {
    engine::apply(key, before, &[op], now_ms, &RULES).expect("a change")
}

#[tokio::test]
async fn a_batch_computed_from_stale_records_writes_nothing_and_names_the_racers() {
    for (name, store) in stores().await {
        let keys = [
            UserKey::new("acme", "u1"),
            UserKey::new("acme", "u2"),
            UserKey::new("globex", "u1"),
        ];
        let first: Vec<Change> = keys.iter().map(|key| change(key, None, open("c1"), 1_000)).collect();
        let committed = store.commit(&first).await.unwrap();
        assert!(committed.conflicts.is_empty(), "{name}: {:?}", committed.conflicts);
        let stored = store.load(&keys).await.unwrap();
        assert!(stored.iter().all(Option::is_some), "{name}");

        // Another replica moves acme/u2 and globex/u1 on.
        let others: Vec<Change> = keys[1..]
            .iter()
            .zip(&stored[1..])
            .map(|(key, record)| change(key, record.as_ref(), page("c1", "/theirs"), 2_000))
            .collect();
        assert!(store.commit(&others).await.unwrap().conflicts.is_empty(), "{name}");

        // This replica's batch still starts from what it read before, and also opens a
        // new user (nothing stored: expects nothing) and re-opens one that exists.
        let mut late: Vec<Change> = keys
            .iter()
            .zip(&stored)
            .map(|(key, record)| change(key, record.as_ref(), page("c1", "/mine"), 3_000))
            .collect();
        let newcomer = UserKey::new("acme", "u3");
        late.push(change(&newcomer, None, open("c1"), 3_000));
        late.push(change(&keys[0], None, open("c2"), 3_000));
        let mut conflicts = store.commit(&late).await.unwrap().conflicts;
        conflicts.sort_unstable();
        assert_eq!(conflicts, [1, 2, 4], "{name}: the changes that raced, by their index");

        let after = store.load(&[keys[0].clone(), keys[1].clone(), newcomer]).await.unwrap();
        assert_eq!(
            after[0], stored[0],
            "{name}: an unraced change of a raced batch is not written"
        );
        let theirs = after[1].as_ref().unwrap();
        assert_eq!(theirs.connections.get("c1").unwrap().metas.page, "/theirs", "{name}");
        assert_eq!(after[2], None, "{name}: nor is a new user");
    }
}

#[tokio::test]
async fn a_read_skips_only_records_the_reader_holds_at_the_stored_version() {
    for (name, store) in stores().await {
        let (u1, u2, u3) = (
            UserKey::new("acme", "u1"),
            UserKey::new("acme", "u2"),
            UserKey::new("acme", "u3"),
        );
        let opened = [
            change(&u1, None, open("c1"), 1_000),
            change(&u2, None, open("c1"), 1_000),
        ];
        store.commit(&opened).await.unwrap();
        let held = store.load(&[u1.clone(), u2.clone()]).await.unwrap();
        let (held_u1, held_u2) = (held[0].clone().unwrap(), held[1].clone().unwrap());
        let moved = change(&u2, Some(&held_u2), page("c1", "/new"), 2_000);
        store.commit(&[moved]).await.unwrap();

        let fetched = store
            .fetch(
                &[u1.clone(), u2.clone(), u3.clone()],
                &[held_u1.version, held_u2.version, 7],
            )
            .await
            .unwrap();
        assert_eq!(fetched[0], Fetched::Held, "{name}: still the version held");
        let Fetched::Record(newer) = &fetched[1] else {
            panic!("{name}: a newer version is read in full: {:?}", fetched[1]);
        };
        assert_eq!(newer.connections.get("c1").unwrap().metas.page, "/new", "{name}");
        assert_eq!(fetched[2], Fetched::Missing, "{name}");
    }
}
