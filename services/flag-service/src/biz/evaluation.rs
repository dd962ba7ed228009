//! Evaluation as every protocol performs it: pick the view, evaluate the flag with the current
//! time as `$flagd.timestamp`, check the type the caller expects.

use std::sync::Arc;

use flag_engine::{Resolution, Scope, ValueKind};
use serde_json::{Map, Value};
use switchyard_platform::auth::Principal;

use super::{
    catalog::{Catalog, View},
    selector::Selector,
};

/// The evaluation use case shared by the native, flagd and OFREP protocols.
#[derive(Debug, Clone)]
pub struct Evaluator {
    catalog: Arc<Catalog>,
    anonymous_tenant: Option<String>,
}

impl Evaluator {
    /// `anonymous_tenant` is whose managed flags callers without credentials see (flagd
    /// providers send none); `None` shows them flag files only.
    pub fn new(catalog: Arc<Catalog>, anonymous_tenant: Option<String>) -> Self {
        Self {
            catalog,
            anonymous_tenant,
        }
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
        context: &Map<String, Value>,
        expected: Option<ValueKind>,
    ) -> Resolution<'v> {
        let scope = Scope {
            context,
            timestamp: now_seconds(),
        };
        let resolution = view.flags().evaluate(key, &scope);
        match expected {
            Some(kind) => resolution.expecting(kind),
            None => resolution,
        }
    }
}

fn now_seconds() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}
