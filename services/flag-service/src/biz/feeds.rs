//! What watchers receive when flags change: flagd's provider events, and full snapshots for
//! in-process providers.
//!
//! Both feeds follow the catalog's generation. A burst of changes that lands while a watcher is
//! busy is folded into one event against the last view that watcher saw, so nothing is missed
//! and nothing is sent twice.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::watch;

use super::{
    access::Reader,
    catalog::{Catalog, Change, View},
    selector::Selector,
};

/// flagd's idle interval before a `keep_alive` event.
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// One provider event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// Sent first: the provider may evaluate.
    Ready,
    /// Flags were added, changed or removed.
    ConfigurationChange(BTreeMap<String, Change>),
    KeepAlive,
}

struct Follower {
    catalog: Arc<Catalog>,
    reader: Reader,
    selector: Selector,
    generations: watch::Receiver<u64>,
    last: Arc<View>,
}

impl Follower {
    fn new(catalog: Arc<Catalog>, reader: Reader, selector: Selector) -> Self {
        let mut generations = catalog.generations();
        generations.mark_unchanged();
        let last = catalog.view(&reader, &selector);
        Self {
            catalog,
            reader,
            selector,
            generations,
            last,
        }
    }

    /// Waits for the next generation (`None` once the catalog is gone), then returns the view
    /// the follower saw before and the one it sees now.
    async fn next(&mut self) -> Option<(Arc<View>, Arc<View>)> {
        self.generations.changed().await.ok()?;
        self.generations.mark_unchanged();
        let now = self.catalog.view(&self.reader, &self.selector);
        let before = std::mem::replace(&mut self.last, now.clone());
        Some((before, now))
    }
}

/// Provider events for what `selector` shows `reader` (a selection the evaluator allowed): `Ready` at once, then a `ConfigurationChange` naming the
/// changed keys whenever the selection changes, and `KeepAlive` after `keep_alive` of silence.
pub fn provider_events(
    catalog: Arc<Catalog>,
    reader: Reader,
    selector: Selector,
    keep_alive: Duration,
) -> impl Stream<Item = ProviderEvent> + Send + 'static {
    let follower = Follower::new(catalog, reader, selector);
    futures::stream::unfold((follower, false), move |(mut follower, started)| async move {
        if !started {
            return Some((ProviderEvent::Ready, (follower, true)));
        }
        loop {
            let Ok(next) = tokio::time::timeout(keep_alive, follower.next()).await else {
                return Some((ProviderEvent::KeepAlive, (follower, true)));
            };
            let (before, now) = next?;
            let changes = now.changes_since(&before);
            if !changes.is_empty() {
                return Some((ProviderEvent::ConfigurationChange(changes), (follower, true)));
            }
        }
    })
}

/// Full snapshots (flagd JSON) for `selector`: the current one at once, then a new one whenever
/// the selection's content changes.
pub fn snapshots(
    catalog: Arc<Catalog>,
    reader: Reader,
    selector: Selector,
) -> impl Stream<Item = Arc<str>> + Send + 'static {
    let follower = Follower::new(catalog, reader, selector);
    futures::stream::unfold((follower, None::<Arc<str>>), |(mut follower, sent)| async move {
        let Some(sent) = sent else {
            let document = follower.last.document();
            return Some((document.clone(), (follower, Some(document))));
        };
        loop {
            let (_, now) = follower.next().await?;
            let document = now.document();
            if document != sent {
                return Some((document.clone(), (follower, Some(document))));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use flag_engine::{FlagSet, Limits};
    use futures::StreamExt;
    use serde_json::json;

    use super::*;
    use crate::biz::catalog::SourceFlags;

    fn flags(default: &str) -> SourceFlags {
        let document = json!({"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": default}}});
        SourceFlags {
            all: FlagSet::from_document(&document, &Limits::default()).unwrap_or_default(),
            client: None,
        }
    }

    #[tokio::test]
    async fn ready_then_changes_then_keep_alive() {
        let catalog = Arc::new(Catalog::new());
        catalog.put_source(None, "a", flags("on"));
        let events = provider_events(
            catalog.clone(),
            Reader::anonymous(None),
            Selector::All,
            Duration::from_millis(200),
        );
        tokio::pin!(events);
        assert_eq!(events.next().await, Some(ProviderEvent::Ready));
        catalog.put_source(None, "a", flags("on")); // same content: no event
        catalog.put_source(None, "a", flags("off"));
        let expected = BTreeMap::from([("banner".to_owned(), Change::Update)]);
        assert_eq!(events.next().await, Some(ProviderEvent::ConfigurationChange(expected)));
        assert_eq!(events.next().await, Some(ProviderEvent::KeepAlive));
    }

    #[tokio::test]
    async fn snapshots_skip_identical_content() {
        let catalog = Arc::new(Catalog::new());
        catalog.put_source(None, "a", flags("on"));
        let documents = snapshots(catalog.clone(), Reader::anonymous(None), Selector::All);
        tokio::pin!(documents);
        let first = documents.next().await.unwrap_or_default();
        assert!(first.contains("\"defaultVariant\":\"on\""), "{first}");
        catalog.put_source(None, "a", flags("on"));
        catalog.put_source(None, "a", flags("off"));
        let second = documents.next().await.unwrap_or_default();
        assert!(second.contains("\"defaultVariant\":\"off\""), "{second}");
    }
}
