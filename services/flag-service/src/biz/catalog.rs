//! Every flag source in memory, and the views that evaluation protocols read.
//!
//! A source is one compiled flag document under a name (a flags file path, or
//! `projects/{p}/environments/{e}` for flags managed through the API) and, for managed flags,
//! the tenant that owns it and the subset client keys see; file sources belong to no tenant
//! and every caller sees them. A [`View`] is what a reader's selector sees: the matching
//! flags of every source the reader may see (see [`super::access`]) merged, later sources
//! overriding earlier ones key by key. Without a selector a caller sees
//! the flag files and, when settings name one, the default managed source — never every
//! project and environment at once, where the same key in two projects would be answered
//! from whichever came last. Views are built once per change of the
//! sources and shared, so an evaluation costs a map lookup and the flag's own evaluation. Every
//! change bumps a generation number that watchers follow.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, OnceLock, RwLock},
};

use flag_engine::FlagSet;
use serde_json::Value;
use switchyard_platform::{Shutdown, auth::directory::KeyDirectory};
use tokio::sync::watch;

use super::{
    access::{Audience, Reader},
    selector::Selector,
};

/// Views kept per generation; selectors beyond this are answered without caching, so callers
/// inventing selectors cannot grow memory.
const MAX_CACHED_VIEWS: usize = 256;

/// The flag sources of this process.
#[derive(Debug)]
pub struct Catalog {
    state: RwLock<State>,
    generation: watch::Sender<u64>,
    /// The managed source (`projects/{p}/environments/{e}`) callers without a selector see.
    default_source: Option<String>,
    /// Which environments are public (and the keys, which evaluation does not need here).
    access: Arc<KeyDirectory>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    /// In priority order: later sources override earlier ones.
    sources: Vec<Source>,
    views: HashMap<(Reader, Selector), Arc<View>>,
}

#[derive(Debug)]
struct Source {
    name: String,
    tenant: Option<String>,
    flags: Arc<FlagSet>,
    /// What client keys see: the client-visible flags (all of them for files).
    client_flags: Arc<FlagSet>,
}

/// A source's flags: all of them, and the client-visible ones.
#[derive(Debug)]
pub struct SourceFlags {
    pub all: FlagSet,
    /// `None` when every flag is client-visible (flag files, which are public anyway).
    pub client: Option<FlagSet>,
}

impl Source {
    fn is(&self, tenant: Option<&str>, name: &str) -> bool {
        self.name == name && self.tenant.as_deref() == tenant
    }

    /// The flags a reader sees of this source, if any.
    fn flags_for(&self, reader: &Reader, access: &KeyDirectory) -> Option<&FlagSet> {
        let public = self
            .tenant
            .as_deref()
            .is_some_and(|tenant| access.is_public(tenant, &self.name));
        match reader.audience(self.tenant.as_deref(), &self.name, public) {
            Audience::Hidden => None,
            Audience::Client => Some(&self.client_flags),
            Audience::Full => Some(&self.flags),
        }
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::with_default_source(None)
    }

    /// A catalog whose callers without a selector also see the managed source `name`.
    pub fn with_default_source(name: Option<String>) -> Self {
        Self::with_access(name, Arc::default())
    }

    /// As [`with_default_source`](Self::with_default_source), with the directory that says
    /// which environments are public.
    pub fn with_access(default_source: Option<String>, access: Arc<KeyDirectory>) -> Self {
        Self {
            state: RwLock::new(State::default()),
            generation: watch::Sender::new(0),
            default_source,
            access,
        }
    }

    /// Whether the managed environment `name` of `tenant` evaluates without a key.
    pub fn is_public(&self, tenant: Option<&str>, name: &str) -> bool {
        tenant.is_some_and(|tenant| self.access.is_public(tenant, name))
    }

    /// Rebuilds every view when an environment is made public or private, so watchers see
    /// flags appear or go, until shutdown. Keys coming and going change no view (a view depends on the reader's roles, not on
    /// which key carried them), so only a change of the public set rebuilds.
    pub async fn follow_access(self: Arc<Self>, shutdown: Shutdown) {
        let mut changes = self.access.changes();
        let mut public = self.access.snapshot().1.public_environments.clone();
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
            let now = self.access.snapshot().1.public_environments.clone();
            if now != public {
                public = now;
                self.change(|_| {});
            }
        }
    }

    /// The managed sources `reader` may read that hold flag `key`: what a caller who sent no
    /// selector is pointed to when the key is not among what it sees. Sources it cannot read
    /// are not named, so a hint never tells a caller where another key's flags live.
    pub fn sources_holding(&self, reader: &Reader, key: &str) -> Vec<String> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .sources
            .iter()
            .filter(|source| source.tenant.is_some())
            .filter(|source| {
                source
                    .flags_for(reader, &self.access)
                    .is_some_and(|flags| flags.get(key).is_some())
            })
            .map(|source| source.name.clone())
            .collect()
    }

    /// Adds a source after the existing ones, or replaces the one with this name and tenant in
    /// place. `tenant` is `None` for sources every caller sees (flag files).
    pub fn put_source(&self, tenant: Option<&str>, name: &str, flags: SourceFlags) {
        let all = Arc::new(flags.all);
        let client = flags.client.map_or_else(|| all.clone(), Arc::new);
        self.change(|sources| {
            let existing = sources.iter_mut().find(|source| source.is(tenant, name));
            match existing {
                Some(source) => {
                    source.flags = all;
                    source.client_flags = client;
                }
                None => sources.push(Source {
                    name: name.to_owned(),
                    tenant: tenant.map(str::to_owned),
                    flags: all,
                    client_flags: client,
                }),
            }
        });
    }

    pub fn remove_source(&self, tenant: Option<&str>, name: &str) {
        self.change(|sources| sources.retain(|source| !source.is(tenant, name)));
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<Source>)) {
        let generation = {
            let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            edit(&mut state.sources);
            state.generation += 1;
            state.views.clear();
            state.generation
        };
        self.generation.send_replace(generation);
    }

    /// What `selector` sees now for `reader`.
    pub fn view(&self, reader: &Reader, selector: &Selector) -> Arc<View> {
        let key = (reader.clone(), selector.clone());
        {
            let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(view) = state.views.get(&key) {
                return view.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(view) = state.views.get(&key) {
            return view.clone();
        }
        let default_source = self.default_source.as_deref();
        let visible = state
            .sources
            .iter()
            .filter_map(|source| source.flags_for(reader, &self.access).map(|flags| (source, flags)));
        let view = Arc::new(View::build(state.generation, reader, visible, selector, default_source));
        if state.views.len() < MAX_CACHED_VIEWS {
            state.views.insert(key, view.clone());
        }
        view
    }

    /// The generation, changing with every source change; watchers wait on it.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The names of a tenant's own sources (not the shared ones).
    pub fn source_names(&self, tenant: &str) -> Vec<String> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .sources
            .iter()
            .filter(|source| source.tenant.as_deref() == Some(tenant))
            .map(|source| source.name.clone())
            .collect()
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
    reader: Reader,
    selector: Selector,
    flags: FlagSet,
    document: OnceLock<Arc<str>>,
    fingerprints: OnceLock<HashMap<String, u64>>,
}

impl View {
    /// Merges the flags each visible source shows its reader.
    fn build<'a>(
        generation: u64,
        reader: &Reader,
        sources: impl Iterator<Item = (&'a Source, &'a FlagSet)>,
        selector: &Selector,
        default_source: Option<&str>,
    ) -> Self {
        let flags = match selector {
            Selector::All => FlagSet::merged(
                sources
                    .filter(|(source, _)| source.tenant.is_none() || Some(source.name.as_str()) == default_source)
                    .map(|(_, flags)| flags),
                |_| true,
            ),
            Selector::Source(name) => FlagSet::merged(
                sources
                    .filter(|(source, _)| &source.name == name)
                    .map(|(_, flags)| flags),
                |_| true,
            ),
            Selector::FlagSetId(id) => FlagSet::merged(sources.map(|(_, flags)| flags), |flag| {
                match flag.metadata().get("flagSetId") {
                    Some(Value::String(flag_set)) => flag_set == id,
                    None => id.is_empty(),
                    Some(_) => false,
                }
            }),
        };
        Self {
            generation,
            reader: reader.clone(),
            selector: selector.clone(),
            flags,
            document: OnceLock::new(),
            fingerprints: OnceLock::new(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The tenant this view was built for (`None`: shared sources only).
    pub fn tenant(&self) -> Option<&str> {
        self.reader.tenant.as_deref()
    }

    /// Who this view was built for.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    pub fn selector(&self) -> &Selector {
        &self.selector
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
    use crate::biz::access::Reach;

    fn flags(document: Value) -> SourceFlags {
        SourceFlags {
            all: FlagSet::from_document(&document, &Limits::default()).unwrap_or_default(),
            client: None,
        }
    }

    fn nobody() -> Reader {
        Reader::anonymous(None)
    }

    /// A caller holding a role on the whole of `tenant`.
    fn member(tenant: &str) -> Reader {
        Reader {
            tenant: Some(tenant.to_owned()),
            reach: Reach::Granted {
                server: vec![None],
                client: vec![],
            },
        }
    }

    fn boolean(on: bool) -> Value {
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": if on { "on" } else { "off" }})
    }

    #[test]
    fn later_sources_override_and_selectors_filter() {
        let catalog = Catalog::new();
        catalog.put_source(
            None,
            "a.json",
            flags(json!({"metadata": {"flagSetId": "shop"}, "flags": {"x": boolean(true), "y": boolean(true)}})),
        );
        catalog.put_source(None, "b.json", flags(json!({"flags": {"x": boolean(false)}})));
        let all = catalog.view(&nobody(), &Selector::All);
        assert_eq!(all.flags().len(), 2);
        assert_eq!(
            all.flags().get("x").and_then(|flag| flag.default_variant()),
            Some("off")
        );
        let shop = catalog.view(&nobody(), &Selector::FlagSetId("shop".into()));
        assert_eq!(
            shop.flags().get("x").and_then(|flag| flag.default_variant()),
            Some("on")
        );
        assert_eq!(
            catalog
                .view(&nobody(), &Selector::Source("b.json".into()))
                .flags()
                .len(),
            1
        );
        assert_eq!(
            catalog
                .view(&nobody(), &Selector::FlagSetId(String::new()))
                .flags()
                .len(),
            1
        );
        assert!(
            catalog
                .view(&nobody(), &Selector::Source("nope".into()))
                .flags()
                .is_empty()
        );
    }

    #[test]
    fn tenants_see_shared_sources_and_only_their_own() {
        let catalog = Catalog::new();
        catalog.put_source(None, "shared.json", flags(json!({"flags": {"shared": boolean(true)}})));
        catalog.put_source(
            Some("acme"),
            "projects/shop/environments/prod",
            flags(json!({"flags": {"acme": boolean(true)}})),
        );
        catalog.put_source(
            Some("globex"),
            "projects/shop/environments/prod",
            flags(json!({"flags": {"globex": boolean(true)}})),
        );
        let acme = catalog.view(
            &member("acme"),
            &Selector::Source("projects/shop/environments/prod".into()),
        );
        assert!(acme.flags().get("acme").is_some());
        assert!(acme.flags().get("globex").is_none());
        let unselected = catalog.view(&member("acme"), &Selector::All);
        assert!(unselected.flags().get("shared").is_some() && unselected.flags().get("acme").is_none());
        let selected = catalog.view(
            &member("globex"),
            &Selector::Source("projects/shop/environments/prod".into()),
        );
        assert_eq!(selected.flags().len(), 1);
        assert!(selected.flags().get("globex").is_some());
        assert_eq!(
            catalog.view(&nobody(), &Selector::All).flags().len(),
            1,
            "no tenant: shared sources only"
        );
    }

    #[test]
    fn without_a_selector_a_caller_sees_flag_files_and_the_default_source_only() {
        let catalog = Catalog::with_default_source(Some("projects/web/environments/prod".into()));
        catalog.put_source(None, "shared.json", flags(json!({"flags": {"shared": boolean(true)}})));
        for project in ["web", "app"] {
            catalog.put_source(
                Some("acme"),
                &format!("projects/{project}/environments/prod"),
                flags(json!({"flags": {"checkout": boolean(project == "web"), project: boolean(true)}})),
            );
        }
        let unselected = catalog.view(&member("acme"), &Selector::All);
        let keys: Vec<&str> = unselected.flags().flags().map(|flag| flag.key()).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(
            unselected
                .flags()
                .get("checkout")
                .and_then(|flag| flag.default_variant()),
            Some("on"),
            "from the default source, whatever came last"
        );
        assert!(unselected.flags().get("app").is_none());
        assert_eq!(
            catalog.sources_holding(&member("acme"), "app"),
            vec!["projects/app/environments/prod"]
        );
        assert!(catalog.sources_holding(&member("globex"), "app").is_empty());
        assert!(
            catalog
                .sources_holding(&Reader::anonymous(Some("acme".into())), "app")
                .is_empty(),
            "a caller without a key is not told where managed flags live"
        );
    }

    #[test]
    fn changes_name_written_updated_and_deleted_flags() {
        let catalog = Catalog::new();
        let mut generations = catalog.generations();
        catalog.put_source(
            None,
            "a",
            flags(json!({"flags": {"kept": boolean(true), "changed": boolean(true), "gone": boolean(true)}})),
        );
        let before = catalog.view(&nobody(), &Selector::All);
        catalog.put_source(
            None,
            "a",
            flags(json!({"flags": {"kept": boolean(true), "changed": boolean(false), "new": boolean(true)}})),
        );
        assert!(generations.has_changed().unwrap_or(false));
        assert_eq!(*generations.borrow_and_update(), 2);
        let after = catalog.view(&nobody(), &Selector::All);
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
