//! Layers, holdouts and layer ranges as protobuf. Shares on the wire are fractions of 1;
//! inside they are whole buckets of 10,000, and a share that is not is refused.

use switchyard_api::experiments::v1 as pb;
use switchyard_platform::{error::FieldViolation, proto_json::timestamp};

use crate::biz::{
    assignment::BUCKETS,
    layering::{HoldoutView, LayerView},
    layers::{Holdout, Layer, LayerRange, buckets_of_share},
};

fn share_to(buckets: i64) -> f64 {
    buckets as f64 / BUCKETS as f64
}

/// An experiment's ranges; a bound that is not a multiple of 0.0001 in [0, 1] is a violation.
pub fn ranges_from(ranges: Vec<pb::LayerRange>, violations: &mut Vec<FieldViolation>) -> Vec<LayerRange> {
    ranges
        .into_iter()
        .enumerate()
        .filter_map(|(index, range)| {
            let bounds = (buckets_of_share(range.start), buckets_of_share(range.end));
            let (Some(from), Some(to)) = bounds else {
                violations.push(FieldViolation::new(
                    format!("experiment.layers[{index}]"),
                    "start and end are shares of the layer in [0, 1], in steps of 0.0001",
                ));
                return None;
            };
            Some(LayerRange {
                layer: range.layer,
                from,
                to,
            })
        })
        .collect()
}

pub fn range_to(range: &LayerRange, experiment: &str) -> pb::LayerRange {
    pb::LayerRange {
        layer: range.layer.clone(),
        start: share_to(range.from),
        end: share_to(range.to),
        experiment: experiment.to_owned(),
    }
}

pub fn layer_from(layer: pb::Layer) -> Layer {
    Layer {
        display_name: layer.display_name,
        description: layer.description,
        bucketing_attribute: layer.bucketing_attribute,
        seed: layer.seed,
    }
}

pub fn layer_to(project: &str, view: &LayerView) -> pb::Layer {
    pb::Layer {
        name: format!("projects/{project}/layers/{}", view.key),
        display_name: view.layer.display_name.clone(),
        description: view.layer.description.clone(),
        bucketing_attribute: view.layer.bucketing_attribute.clone(),
        seed: view.layer.seed.clone(),
        ranges: view
            .ranges
            .iter()
            .map(|(experiment, range)| range_to(range, &format!("projects/{project}/experiments/{experiment}")))
            .collect(),
        create_time: timestamp(view.created_ms),
    }
}

/// A holdout; a share that is not a whole number of buckets is left at 0 buckets, which the
/// use case refuses with the field named.
pub fn holdout_from(holdout: pb::Holdout) -> Holdout {
    Holdout {
        display_name: holdout.display_name,
        description: holdout.description,
        buckets: buckets_of_share(holdout.share).unwrap_or(0),
        bucketing_attribute: holdout.bucketing_attribute,
        seed: holdout.seed,
        environments: holdout.environments,
        metrics: holdout.metrics,
    }
}

pub fn holdout_to(project: &str, view: &HoldoutView) -> pb::Holdout {
    pb::Holdout {
        name: format!("projects/{project}/holdouts/{}", view.key),
        display_name: view.holdout.display_name.clone(),
        description: view.holdout.description.clone(),
        share: share_to(view.holdout.buckets),
        bucketing_attribute: view.holdout.bucketing_attribute.clone(),
        seed: view.holdout.seed.clone(),
        environments: view.holdout.environments.clone(),
        create_time: timestamp(view.created_ms),
        metrics: view.holdout.metrics.clone(),
    }
}
