//! Prometheus's HTTP API for health gates: `GET {address}/api/v1/query?query=…`, an instant
//! query, answered as `{"status", "data": {"resultType", "result"}}`. Plain HTTP only (the
//! in-cluster Prometheus service address); a query that takes longer than [`TIMEOUT`] is
//! reported as no answer, which the gate treats as inconclusive.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Deserialize;
use serde_json::Value;

use crate::biz::deployments::{gates::QueryResult, probe::MetricsSource};

/// How long one query may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read.
const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub struct PrometheusHttp {
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for PrometheusHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusHttp").finish_non_exhaustive()
    }
}

impl Default for PrometheusHttp {
    fn default() -> Self {
        PrometheusHttp {
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Value,
}

impl PrometheusHttp {
    async fn run(&self, address: &str, query: &str) -> Result<QueryResult, String> {
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let uri = format!("{}/api/v1/query?query={encoded}", address.trim_end_matches('/'));
        let uri: http::Uri = uri.parse().map_err(|error| format!("bad address: {error}"))?;
        let request = http::Request::get(uri)
            .body(Empty::new())
            .map_err(|error| error.to_string())?;
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|_| format!("HTTP {status}: not a Prometheus API answer"))?;
        if answer.status != "success" {
            return Err(format!("HTTP {status}: {}", answer.error));
        }
        let data = answer.data.ok_or("an answer without data")?;
        Ok(result_of(&data))
    }
}

fn sample(pair: &Value) -> Option<f64> {
    let text = pair.get(1)?.as_str()?;
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn result_of(data: &Data) -> QueryResult {
    match data.result_type.as_str() {
        "scalar" => QueryResult::Samples(sample(&data.result).into_iter().collect()),
        "vector" => {
            let samples = data
                .result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|series| series.get("value").and_then(sample))
                .collect();
            QueryResult::Samples(samples)
        }
        "string" => QueryResult::Unusable("a string, not a number".to_owned()),
        "matrix" => QueryResult::Unusable("a range vector; use an instant query".to_owned()),
        other => QueryResult::Unusable(format!("a result of type `{other}`")),
    }
}

impl MetricsSource for PrometheusHttp {
    fn query<'a>(&'a self, address: &'a str, query: &'a str) -> BoxFuture<'a, Result<QueryResult, String>> {
        Box::pin(self.run(address, query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(result_type: &str, result: Value) -> Data {
        Data {
            result_type: result_type.to_owned(),
            result,
        }
    }

    #[test]
    fn every_result_type_is_read_as_prometheus_documents_it() {
        let vector = serde_json::json!([
            {"metric": {"release": "7"}, "value": [1.7e9, "0.25"]},
            {"metric": {"release": "6"}, "value": [1.7e9, "NaN"]}
        ]);
        let QueryResult::Samples(samples) = result_of(&data("vector", vector)) else {
            panic!()
        };
        assert_eq!(samples[0], 0.25);
        assert!(samples[1].is_nan());
        assert_eq!(
            result_of(&data("scalar", serde_json::json!([1.7e9, "+Inf"]))),
            QueryResult::Samples(vec![f64::INFINITY])
        );
        assert_eq!(
            result_of(&data("vector", serde_json::json!([]))),
            QueryResult::Samples(vec![])
        );
        assert!(matches!(
            result_of(&data("string", serde_json::json!([1.7e9, "hello"]))),
            QueryResult::Unusable(_)
        ));
        assert!(matches!(
            result_of(&data("matrix", serde_json::json!([]))),
            QueryResult::Unusable(_)
        ));
    }
}
