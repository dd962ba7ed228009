//! Running a gate's check: asking Prometheus, or summing what clients reported. The answer is
//! judged by [`super::gates`].

use futures::future::BoxFuture;

use super::{
    Deployments,
    gates::{self, Check, Outcome, QueryArguments, QueryResult},
    model::Deployment,
    repository::DeploymentRepository,
    strategy::percentage_of,
};
use crate::biz::repository::Repository;

/// A Prometheus-compatible HTTP API (`/api/v1/query`), implemented in `data::prometheus`.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// Runs an instant query at `address`; `Err` describes why no answer came back.
    fn query<'a>(&'a self, address: &'a str, query: &'a str) -> BoxFuture<'a, Result<QueryResult, String>>;
}

impl<R: Repository + DeploymentRepository> Deployments<R> {
    /// Runs gate `index` of `deployment` now.
    pub(super) async fn probe(&self, deployment: &Deployment, index: usize) -> Outcome {
        let Some(gate) = deployment.gates.get(index) else {
            return Outcome::Inconclusive("no such gate".to_owned());
        };
        match &gate.check {
            Check::Prometheus {
                address,
                query,
                success_condition,
                failure_condition,
            } => {
                let arguments = QueryArguments {
                    project: deployment.env.project.clone(),
                    environment: deployment.env.environment.clone(),
                    target: deployment.target.clone(),
                    release: deployment.version,
                    previous_release: deployment.previous,
                    percentage: percentage_of(deployment.share),
                };
                let query = gates::render_query(query, &arguments);
                match self.metrics.query(address, &query).await {
                    Ok(result) => gates::judge_prometheus(&result, success_condition, failure_condition),
                    Err(error) => Outcome::Inconclusive(format!("Prometheus did not answer: {error}")),
                }
            }
            Check::ClientHealth {
                max_error_rate,
                max_relative_increase,
                min_sample,
            } => {
                let counts = |version| {
                    self.repository.health(
                        &deployment.env,
                        deployment.kind,
                        &deployment.target,
                        version,
                        deployment.created_ms,
                    )
                };
                let (candidate, previous) = futures::join!(counts(deployment.version), counts(deployment.previous));
                match (candidate, previous) {
                    (Ok(candidate), Ok(previous)) => gates::judge_client_health(
                        candidate,
                        previous,
                        *max_error_rate,
                        *max_relative_increase,
                        *min_sample,
                    ),
                    (Err(error), _) | (_, Err(error)) => {
                        Outcome::Inconclusive(format!("reading client reports failed: {error}"))
                    }
                }
            }
        }
    }
}
