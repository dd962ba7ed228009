//! Evaluation as every protocol performs it: find out who reads (see [`super::access`]), pick
//! the view, evaluate the flag with the current time as `$flagd.timestamp`, check the type the
//! caller expects.

use std::sync::Arc;

use flag_engine::{Context, ErrorCode, Resolution, Scope, ValueKind};
use serde_json::{Map, Value};
use switchyard_platform::{
    auth::{API_KEY_PREFIX, Authenticator, Principal},
    clock::now_ms,
};

use super::{
    access::{AccessError, Reader},
    catalog::{Catalog, View},
    selector::Selector,
    usage::{EXPERIMENT_KEY, Exposure, MAX_EXPOSURE_ATTRIBUTES, Usage},
};

/// The evaluation use case shared by the native, flagd and OFREP protocols.
#[derive(Debug, Clone)]
pub struct Evaluator {
    catalog: Arc<Catalog>,
    anonymous_tenant: Option<String>,
    usage: Arc<Usage>,
    static_context: Arc<Map<String, Value>>,
    /// Checks API keys that flagd providers send as their selector.
    authenticator: Arc<Authenticator>,
}

impl Evaluator {
    /// `anonymous_tenant` is whose public environments callers without credentials see
    /// (flagd providers often send none); `None` shows them flag files only.
    pub fn new(
        catalog: Arc<Catalog>,
        anonymous_tenant: Option<String>,
        usage: Arc<Usage>,
        authenticator: Arc<Authenticator>,
    ) -> Self {
        Self {
            catalog,
            anonymous_tenant,
            usage,
            static_context: Arc::default(),
            authenticator,
        }
    }

    /// Entries added to every evaluation context, overriding the caller's (flagd's
    /// `--context-value`).
    pub fn with_static_context(mut self, context: Map<String, Value>) -> Self {
        self.static_context = Arc::new(context);
        self
    }

    pub fn static_context(&self) -> &Map<String, Value> {
        &self.static_context
    }

    pub fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }

    /// Who reads and what they select: the authenticated principal, else an API key sent as
    /// the selector (all a flagd provider can set), else an anonymous caller of the
    /// anonymous tenant.
    pub fn reader(&self, principal: Option<&Principal>, selector: &str) -> Result<(Reader, Selector), AccessError> {
        let selector = selector.trim();
        if selector.starts_with(API_KEY_PREFIX) {
            let principal = self
                .authenticator
                .authenticate(&format!("Bearer {selector}"))
                .map_err(|error| AccessError::BadKey(error.to_string()))?;
            return Ok((Reader::of(&principal), Selector::All));
        }
        let selector = Selector::parse(selector)?;
        let reader = match principal {
            Some(principal) => Reader::of(principal),
            None => Reader::anonymous(self.anonymous_tenant.clone()),
        };
        Ok((reader, selector))
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// What `selector` sees now for `reader`; hold it for a bulk evaluation so every flag
    /// comes from one generation. A selector naming an environment the reader cannot see
    /// is refused rather than answered with nothing.
    pub fn view(&self, reader: &Reader, selector: &Selector) -> Result<Arc<View>, AccessError> {
        let selection = self.selection(reader, selector)?;
        Ok(self.catalog.view(reader, &selection))
    }

    /// The selector `reader` really evaluates with (a key bound to one environment selects
    /// it), once allowed: what watchers of a selection follow.
    pub fn selection(&self, reader: &Reader, selector: &Selector) -> Result<Selector, AccessError> {
        let selection = reader.implied_selector(selector);
        reader.check(&selection, |name| {
            self.catalog.is_public(reader.tenant.as_deref(), name)
        })?;
        Ok(selection)
    }

    /// Evaluates `key` in `view`; with `expected`, a value of another type is TYPE_MISMATCH.
    pub fn evaluate<'v>(
        &self,
        view: &'v View,
        key: &str,
        context: &Context,
        expected: Option<ValueKind>,
    ) -> Resolution<'v> {
        let now_ms = now_ms();
        let merged;
        let context = if self.static_context.is_empty() {
            context
        } else {
            let mut with_static = context.clone();
            with_static.extend(
                self.static_context
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
            merged = with_static;
            &merged
        };
        let scope = Scope {
            context,
            timestamp: now_ms / 1000,
        };
        let mut resolution = view.flags().evaluate(key, &scope);
        if matches!(resolution.error, Some((ErrorCode::FlagNotFound, _))) && *view.selector() == Selector::All {
            let holders = self.catalog.sources_holding(view.reader(), key);
            if !holders.is_empty() {
                let message = format!(
                    "flag `{key}` is managed in {}: send one of them as the selector (the `Flagd-Selector` header or `selector`)",
                    holders.join(", ")
                );
                resolution.error = Some((ErrorCode::FlagNotFound, message.into()));
            }
        }
        let resolution = match expected {
            Some(kind) => resolution.expecting(kind),
            None => resolution,
        };
        self.observe(view, key, context, &resolution, now_ms);
        resolution
    }

    /// Counts the evaluation of a flag that exists, and emits an exposure when the flag is
    /// bound to an experiment and served a variant.
    fn observe(&self, view: &View, key: &str, context: &Context, resolution: &Resolution<'_>, now_ms: i64) {
        if matches!(resolution.error, Some((ErrorCode::FlagNotFound, _))) {
            return;
        }
        let tenant = view.tenant().unwrap_or_default();
        let flag_set = resolution
            .metadata
            .get("flagSetId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.usage.record(tenant, flag_set, key, resolution.variant, now_ms);
        let (Some(Value::String(experiment)), Some(variant)) =
            (resolution.metadata.get(EXPERIMENT_KEY), resolution.variant)
        else {
            return;
        };
        self.usage.expose(Exposure {
            tenant: tenant.to_owned(),
            experiment: experiment.clone(),
            flag_set: flag_set.to_owned(),
            flag: key.to_owned(),
            variant: variant.to_owned(),
            targeting_key: context
                .get("targetingKey")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            timestamp_ms: now_ms,
            context: context
                .iter()
                .filter(|(_, value)| matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)))
                .take(MAX_EXPOSURE_ATTRIBUTES)
                .map(|(key, value)| (key.to_owned(), value.clone()))
                .collect(),
        });
    }
}
