//! Evaluation as every protocol performs it: pick the view, evaluate the flag with the current
//! time as `$flagd.timestamp`, check the type the caller expects.

use std::sync::Arc;

use flag_engine::{Context, ErrorCode, Resolution, Scope, ValueKind};
use serde_json::{Map, Value};
use switchyard_platform::{auth::Principal, clock::now_ms};

use super::{
    catalog::{Catalog, View},
    selector::Selector,
    usage::{EXPERIMENT_KEY, Exposure, Usage},
};

/// The evaluation use case shared by the native, flagd and OFREP protocols.
#[derive(Debug, Clone)]
pub struct Evaluator {
    catalog: Arc<Catalog>,
    anonymous_tenant: Option<String>,
    usage: Arc<Usage>,
    static_context: Arc<Map<String, Value>>,
}

impl Evaluator {
    /// `anonymous_tenant` is whose managed flags callers without credentials see (flagd
    /// providers send none); `None` shows them flag files only.
    pub fn new(catalog: Arc<Catalog>, anonymous_tenant: Option<String>, usage: Arc<Usage>) -> Self {
        Self {
            catalog,
            anonymous_tenant,
            usage,
            static_context: Arc::default(),
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

    /// The tenant whose flags a caller sees: its own when it authenticated, else the
    /// anonymous tenant.
    pub fn tenant_of(&self, principal: Option<&Principal>) -> Option<String> {
        principal
            .map(|principal| principal.tenant.clone())
            .or_else(|| self.anonymous_tenant.clone())
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// What `selector` sees now for a caller of `tenant` (`None`: shared sources only); hold
    /// it for a bulk evaluation so every flag comes from one generation.
    pub fn view(&self, tenant: Option<&str>, selector: &Selector) -> Arc<View> {
        self.catalog.view(tenant, selector)
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
            let holders = self.catalog.sources_holding(view.tenant(), key);
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
        });
    }
}
