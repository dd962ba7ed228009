//! Every flag source in memory, and the views that evaluation protocols read.
//!
//! A source is one compiled flag document under a name (a flags file path, later a project
//! environment). A [`View`] is what a selector sees: the matching flags of every source merged,
//! later sources overriding earlier ones key by key. Views are built once per change of the
//! sources and shared, so an evaluation costs a map lookup and the flag's own evaluation. Every
//! change bumps a generation number that watchers follow.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, OnceLock, RwLock},
};

use flag_engine::FlagSet;
use serde_json::Value;
use tokio::sync::watch;

use super::selector::Selector;

/// Views kept per generation; selectors beyond this are answered without caching, so callers
/// inventing selectors cannot grow memory.
const MAX_CACHED_VIEWS: usize = 256;

/// The flag sources of this process.
#[derive(Debug)]
pub struct Catalog {
    state: RwLock<State>,
    generation: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    /// In priority order: later sources override earlier ones.
    sources: Vec<(String, Arc<FlagSet>)>,
    views: HashMap<Selector, Arc<View>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            generation: watch::Sender::new(0),
        }
    }

    /// Adds a source after the existing ones, or replaces the one with this name in place.
    pub fn put_source(&self, name: &str, flags: FlagSet) {
        let flags = Arc::new(flags);
        self.change(
            |sources| match sources.iter_mut().find(|(existing, _)| existing == name) {
                Some(source) => source.1 = flags,
                None => sources.push((name.to_owned(), flags)),
            },
        );
    }

    pub fn remove_source(&self, name: &str) {
        self.change(|sources| sources.retain(|(existing, _)| existing != name));
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<(String, Arc<FlagSet>)>)) {
        let generation = {
            let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            edit(&mut state.sources);
            state.generation += 1;
            state.views.clear();
            state.generation
        };
        self.generation.send_replace(generation);
    }

    /// What `selector` sees now.
    pub fn view(&self, selector: &Selector) -> Arc<View> {
        {
            let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(view) = state.views.get(selector) {
                return view.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(view) = state.views.get(selector) {
            return view.clone();
        }
        let view = Arc::new(View::build(state.generation, &state.sources, selector));
        if state.views.len() < MAX_CACHED_VIEWS {
            state.views.insert(selector.clone(), view.clone());
        }
        view
    }

    /// The generation, changing with every source change; watchers wait on it.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Source names in priority order.
    pub fn source_names(&self) -> Vec<String> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sources.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// How a flag changed between two views, in flagd's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Added.
    Write,
    Update,
    Delete,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// The flags one selector sees at one generation.
#[derive(Debug)]
pub struct View {
    generation: u64,
    flags: FlagSet,
    document: OnceLock<Arc<str>>,
    fingerprints: OnceLock<HashMap<String, u64>>,
}

impl View {
    fn build(generation: u64, sources: &[(String, Arc<FlagSet>)], selector: &Selector) -> Self {
        let flags = match selector {
            Selector::All => FlagSet::merged(sources.iter().map(|(_, flags)| &**flags), |_| true),
            Selector::Source(name) => FlagSet::merged(
                sources
                    .iter()
                    .filter(|(source, _)| source == name)
                    .map(|(_, flags)| &**flags),
                |_| true,
            ),
            Selector::FlagSetId(id) => FlagSet::merged(sources.iter().map(|(_, flags)| &**flags), |flag| {
                match flag.metadata().get("flagSetId") {
                    Some(Value::String(flag_set)) => flag_set == id,
                    None => id.is_empty(),
                    Some(_) => false,
                }
            }),
        };
        Self {
            generation,
            flags,
            document: OnceLock::new(),
            fingerprints: OnceLock::new(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn flags(&self) -> &FlagSet {
        &self.flags
    }

    /// The view as the flagd JSON document the sync protocol carries, built once.
    pub fn document(&self) -> Arc<str> {
        self.document
            .get_or_init(|| Arc::from(self.flags.to_document().to_string()))
            .clone()
    }

    /// Every flag that differs from `earlier`, sorted by key.
    pub fn changes_since(&self, earlier: &View) -> BTreeMap<String, Change> {
        let now = self.fingerprints();
        let before = earlier.fingerprints();
        let mut changes = BTreeMap::new();
        for (key, fingerprint) in now {
            match before.get(key) {
                None => changes.insert(key.clone(), Change::Write),
                Some(previous) if previous != fingerprint => changes.insert(key.clone(), Change::Update),
                Some(_) => None,
            };
        }
        for key in before.keys().filter(|key| !now.contains_key(*key)) {
            changes.insert(key.clone(), Change::Delete);
        }
        changes
    }

    fn fingerprints(&self) -> &HashMap<String, u64> {
        self.fingerprints.get_or_init(|| {
            self.flags
                .flags()
                .map(|flag| {
                    let mut hasher = DefaultHasher::new();
                    flag.definition().to_string().hash(&mut hasher);
                    (flag.key().to_owned(), hasher.finish())
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use flag_engine::Limits;
    use serde_json::json;

    use super::*;

    fn flags(document: Value) -> FlagSet {
        FlagSet::from_document(&document, &Limits::default()).unwrap_or_default()
    }

    fn boolean(on: bool) -> Value {
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": if on { "on" } else { "off" }})
    }

    #[test]
    fn later_sources_override_and_selectors_filter() {
        let catalog = Catalog::new();
        catalog.put_source(
            "a.json",
            flags(json!({"metadata": {"flagSetId": "shop"}, "flags": {"x": boolean(true), "y": boolean(true)}})),
        );
        catalog.put_source("b.json", flags(json!({"flags": {"x": boolean(false)}})));
        let all = catalog.view(&Selector::All);
        assert_eq!(all.flags().len(), 2);
        assert_eq!(
            all.flags().get("x").and_then(|flag| flag.default_variant()),
            Some("off")
        );
        let shop = catalog.view(&Selector::FlagSetId("shop".into()));
        assert_eq!(
            shop.flags().get("x").and_then(|flag| flag.default_variant()),
            Some("on")
        );
        assert_eq!(catalog.view(&Selector::Source("b.json".into())).flags().len(), 1);
        assert_eq!(catalog.view(&Selector::FlagSetId(String::new())).flags().len(), 1);
        assert!(catalog.view(&Selector::Source("nope".into())).flags().is_empty());
    }

    #[test]
    fn changes_name_written_updated_and_deleted_flags() {
        let catalog = Catalog::new();
        let mut generations = catalog.generations();
        catalog.put_source(
            "a",
            flags(json!({"flags": {"kept": boolean(true), "changed": boolean(true), "gone": boolean(true)}})),
        );
        let before = catalog.view(&Selector::All);
        catalog.put_source(
            "a",
            flags(json!({"flags": {"kept": boolean(true), "changed": boolean(false), "new": boolean(true)}})),
        );
        assert!(generations.has_changed().unwrap_or(false));
        assert_eq!(*generations.borrow_and_update(), 2);
        let after = catalog.view(&Selector::All);
        let changes: Vec<(String, &str)> = after
            .changes_since(&before)
            .into_iter()
            .map(|(key, change)| (key, change.as_str()))
            .collect();
        assert_eq!(
            changes,
            vec![
                ("changed".into(), "update"),
                ("gone".into(), "delete"),
                ("new".into(), "write")
            ]
        );
    }
}
