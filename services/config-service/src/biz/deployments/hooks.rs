//! What a deployment tells, and asks, the outside: a pre-start webhook that may refuse it, and
//! an announcement of every event on the realtime channel `$deployments:{project}` and to the
//! deployment's webhooks. The driver announces each event after it is stored, at least once
//! and in order (a replica that takes over announces what the dead one had not). The
//! transport is [`crate::biz::webhooks::Hooks`].

use serde_json::{Value, json};

use super::{
    model::{Deployment, Event},
    strategy::percentage_of,
};
use crate::biz::webhooks::HookAnswer;

/// The channel a project's deployment events are published on.
pub fn channel(project: &str) -> String {
    format!("$deployments:{project}")
}

/// What the pre-start webhook is sent.
pub fn pre_start_request(deployment: &Deployment) -> Value {
    json!({
        "type": "deployment_pre_start",
        "deployment": deployment.resource(),
        "target": deployment.target_resource(),
        "release": deployment.version,
        "previousRelease": deployment.previous,
        "strategy": deployment.strategy.id,
        "createdBy": deployment.created_by,
        "description": deployment.description,
    })
}

/// The webhook's verdict: `Some(reason)` refuses the deployment. A 2xx answer allows it unless
/// its JSON body says `"allow": false` (with an optional `"reason"`); any other answer, or none,
/// refuses it — a gate that cannot be asked is not a yes.
pub fn verdict(answer: Result<HookAnswer, String>) -> Option<String> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return Some(format!("the pre-start webhook did not answer: {error}")),
    };
    let text: String = String::from_utf8_lossy(&answer.body).chars().take(500).collect();
    if !(200..300).contains(&answer.status) {
        return Some(format!("the pre-start webhook answered {}: {text}", answer.status));
    }
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if body.get("allow") != Some(&Value::Bool(false)) {
        return None;
    }
    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
    let reason: String = reason.chars().take(500).collect();
    Some(format!("refused by the pre-start webhook: {reason}"))
}

/// One event as the channel and the webhooks receive it (JSON, camelCase).
pub fn notice(deployment: &Deployment, event: &Event) -> Value {
    json!({
        "type": "deployment_event",
        "deployment": deployment.resource(),
        "project": deployment.env.project,
        "environment": deployment.env.environment,
        "target": deployment.target_resource(),
        "release": deployment.version,
        "previousRelease": deployment.previous,
        "sequence": event.sequence,
        "kind": event.kind.name(),
        "state": event.state.name(),
        "percentage": percentage_of(event.share),
        "actor": event.actor,
        "detail": event.detail,
        "timeMs": event.created_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<HookAnswer, String> {
        Ok(HookAnswer {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn the_webhook_allows_unless_it_says_no_or_cannot_be_asked() {
        assert_eq!(verdict(answer(200, "")), None);
        assert_eq!(verdict(answer(204, r#"{"allow": true}"#)), None);
        let no = verdict(answer(
            200,
            r#"{"allow": false, "reason": "CAB has not approved CHG-42"}"#,
        ))
        .unwrap();
        assert!(no.contains("CHG-42"), "{no}");
        let error = verdict(answer(503, "maintenance")).unwrap();
        assert!(error.contains("503") && error.contains("maintenance"), "{error}");
        let silent = verdict(Err("connection refused".into())).unwrap();
        assert!(silent.contains("did not answer"), "{silent}");
    }
}
