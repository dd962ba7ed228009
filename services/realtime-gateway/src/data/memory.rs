//! The single-node broker: streams in this process's memory, with the same semantics as
//! the Redis broker (offsets, epochs, bounded history with a TTL, idempotency keys).
//! A publish assigns its offset and hands the publication to the hub under one lock, so
//! subscribers see each channel in offset order.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use switchyard_platform::clock::now_ms;

use crate::biz::{
    broker::{
        Broker, BrokerError, BrokerSink, Control, HistoryPage, HistoryQuery, NodeReport, PublishCommand, Published,
        new_epoch,
    },
    channel::Topic,
    publication::{Publication, StreamPosition},
};

pub struct MemoryBroker {
    state: Mutex<State>,
    sink: Arc<dyn BrokerSink>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<Topic, Stream>,
    idempotency: HashMap<(Topic, String), (StreamPosition, Instant)>,
    report: Option<NodeReport>,
}

struct Stream {
    epoch: Arc<str>,
    offset: u64,
    history: VecDeque<Publication>,
    /// When the stream's position may be forgotten.
    expires: Instant,
}

impl Stream {
    fn new(meta_ttl: Duration) -> Self {
        Stream {
            epoch: new_epoch(),
            offset: 0,
            history: VecDeque::new(),
            expires: Instant::now() + meta_ttl,
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }
}

impl MemoryBroker {
    pub fn new(sink: Arc<dyn BrokerSink>) -> Self {
        MemoryBroker {
            state: Mutex::default(),
            sink,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn stream<'a>(state: &'a mut State, topic: &Topic, meta_ttl: Duration) -> &'a mut Stream {
    let now = Instant::now();
    let stream = state
        .streams
        .entry(topic.clone())
        .or_insert_with(|| Stream::new(meta_ttl));
    if stream.expires <= now {
        *stream = Stream::new(meta_ttl);
    }
    stream
}

impl Broker for MemoryBroker {
    async fn publish(&self, command: PublishCommand) -> Result<Published, BrokerError> {
        let mut state = self.state();
        let now = Instant::now();
        let key = command
            .idempotency_key
            .as_ref()
            .map(|key| (command.topic.clone(), key.clone()));
        let seen = key.as_ref().and_then(|key| state.idempotency.get(key));
        if let Some((position, _)) = seen.filter(|(_, expires)| *expires > now) {
            return Ok(Published {
                position: position.clone(),
                duplicate: true,
            });
        }
        let policy = command.history;
        let stream = stream(&mut state, &command.topic, policy.meta_ttl.max(policy.ttl));
        stream.offset += 1;
        stream.expires = now + policy.meta_ttl.max(policy.ttl);
        let mut publication = command.publication;
        publication.offset = stream.offset;
        if policy.size > 0 {
            stream.history.push_back(publication.clone());
            while stream.history.len() > policy.size {
                stream.history.pop_front();
            }
        }
        let position = stream.position();
        self.sink.deliver(&command.topic, &position.epoch, publication);
        if let Some(key) = key {
            state
                .idempotency
                .insert(key, (position.clone(), now + command.idempotency_ttl));
        }
        Ok(Published {
            position,
            duplicate: false,
        })
    }

    async fn history(&self, topic: &Topic, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let mut state = self.state();
        let stream = stream(&mut state, topic, query.meta_ttl.max(query.ttl));
        let oldest = now_ms() - query.ttl.as_millis() as i64;
        let after = query.after.unwrap_or(0);
        let kept = stream
            .history
            .iter()
            .filter(|publication| publication.offset > after && publication.time_ms >= oldest);
        let publications = if query.reverse {
            kept.rev().take(query.limit).cloned().collect()
        } else {
            kept.take(query.limit).cloned().collect()
        };
        Ok(HistoryPage {
            publications,
            position: stream.position(),
        })
    }

    async fn remove_history(&self, topic: &Topic) -> Result<(), BrokerError> {
        if let Some(stream) = self.state().streams.get_mut(topic) {
            stream.history.clear();
        }
        Ok(())
    }

    async fn subscribe(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        self.sink.control(control);
        Ok(())
    }

    async fn report(&self, report: NodeReport) -> Result<(), BrokerError> {
        let mut state = self.state();
        let now = Instant::now();
        state.streams.retain(|_, stream| stream.expires > now);
        state.idempotency.retain(|_, (_, expires)| *expires > now);
        state.report = Some(report);
        Ok(())
    }

    async fn nodes(&self, _fresh: Duration) -> Result<Vec<NodeReport>, BrokerError> {
        Ok(self.state().report.iter().cloned().collect())
    }
}
