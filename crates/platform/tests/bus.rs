//! The change bus delivers to every subscriber of a topic, on the in-process bus and
//! across connections through real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use switchyard_platform::bus::{self, ChangeBus};

async fn delivers_to_every_subscriber(publisher: &dyn ChangeBus, subscriber: &dyn ChangeBus) {
    let topic = format!("test:{}", uuid::Uuid::new_v4());
    let mut first = subscriber.subscribe(&topic).await.unwrap();
    let mut second = subscriber.subscribe(&topic).await.unwrap();
    let mut other = subscriber.subscribe("test:other-topic").await.unwrap();
    for n in 0..3 {
        publisher
            .publish(&topic, Bytes::from(format!("rev-{n}")))
            .await
            .unwrap();
    }
    for stream in [&mut first, &mut second] {
        for n in 0..3 {
            let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(message.topic, topic);
            assert_eq!(message.payload, Bytes::from(format!("rev-{n}")));
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err(),
        "other topics stay quiet"
    );
}

#[tokio::test]
async fn in_process_bus() {
    let bus = bus::connect(None).await.unwrap();
    assert_eq!(bus.kind(), "in-process");
    delivers_to_every_subscriber(bus.as_ref(), bus.as_ref()).await;
}

#[tokio::test]
async fn redis_bus_between_two_replicas() {
    let url = support::redis_url();
    let replica_a = bus::connect(Some(&url))
        .await
        .expect("Redis must be running (make test starts it)");
    let replica_b = bus::connect(Some(&url)).await.unwrap();
    assert_eq!(replica_a.kind(), "redis");
    delivers_to_every_subscriber(replica_a.as_ref(), replica_b.as_ref()).await;
}

#[tokio::test]
async fn redis_bus_fails_fast_when_unreachable() {
    let error = bus::connect(Some("redis://127.0.0.1:1")).await.unwrap_err();
    assert!(error.to_string().contains("redis"));
}
