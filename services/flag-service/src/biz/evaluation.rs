//! Evaluation as every protocol performs it: pick the view, evaluate the flag with the current
//! time as `$flagd.timestamp`, check the type the caller expects.

use std::sync::Arc;

use flag_engine::{Resolution, Scope, ValueKind};
use serde_json::{Map, Value};

use super::{
    catalog::{Catalog, View},
    selector::Selector,
};

/// The evaluation use case shared by the native, flagd and OFREP protocols.
#[derive(Debug, Clone)]
pub struct Evaluator {
    catalog: Arc<Catalog>,
}

impl Evaluator {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// What `selector` sees now; hold it for a bulk evaluation so every flag comes from one
    /// generation.
    pub fn view(&self, selector: &Selector) -> Arc<View> {
        self.catalog.view(selector)
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
