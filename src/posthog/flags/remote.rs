//! Remote evaluation: PostHog's `/flags` endpoint, version 2 of its answer.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::super::api::{self, PROVIDER};
use super::local::normalize_payload;
use super::Shared;
use crate::flags::{Flag, FlagOrigin, FlagRequest, FlagValue};
use crate::{Error, Result};

/// The route, with the answer version.
pub(crate) const PATH: &str = "/flags/";

/// What the server answered: the flags, and whether it said it failed to compute some.
pub(crate) struct Answer {
    pub(crate) flags: BTreeMap<String, Flag>,
    pub(crate) incomplete: bool,
}

/// Evaluates `keys` (every flag when empty) for `request` on the server.
pub(crate) async fn evaluate(
    shared: &Shared,
    request: &FlagRequest,
    keys: &[String],
) -> Result<Answer> {
    let Some(project_key) = &shared.config.project_key else {
        return Err(Error::builder(
            "posthog: remote flag evaluation needs the project API key (POSTHOG_API_KEY)",
        )
        .with_provider(PROVIDER));
    };
    let mut body = json!({
        "api_key": project_key.expose(),
        "distinct_id": request.distinct_id,
        "groups": request.groups,
        "person_properties": request.person_properties,
        "group_properties": request.group_properties,
        // Server-side calls would geolocate the server, not the person.
        "geoip_disable": true,
    });
    if !keys.is_empty() {
        body["flag_keys_to_evaluate"] = json!(keys);
    }
    let url = api::url(&shared.config.host, PATH, &[("v", "2")])?;
    let call = shared
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let answer = api::send(call, shared.config.request_timeout, "flags").await?;
    if !answer.status.is_success() {
        return Err(api::status_error("flags", &answer));
    }
    let body = api::json("flags", &answer)?;
    Ok(Answer {
        flags: parse(&body)?,
        incomplete: had_errors(&body),
    })
}

/// Reads a `/flags` answer: v2 (`{"flags": {key: {enabled, variant, metadata, reason}}}`) or
/// the older `{"featureFlags", "featureFlagPayloads"}`.
pub(crate) fn parse(body: &Value) -> Result<BTreeMap<String, Flag>> {
    if quota_limited(body) {
        return Err(Error::other(
            "feature flags are over the project's quota: every flag reads as off",
        )
        .with_provider(PROVIDER));
    }
    let request_id = body
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut flags = BTreeMap::new();
    if let Some(details) = body.get("flags").and_then(Value::as_object) {
        for (key, detail) in details {
            let Some(enabled) = detail.get("enabled").and_then(Value::as_bool) else {
                continue;
            };
            let variant = detail.get("variant").and_then(Value::as_str);
            let value = match (enabled, variant) {
                (true, Some(variant)) => FlagValue::variant(variant),
                (enabled, _) => FlagValue::Bool(enabled),
            };
            let metadata = detail.get("metadata");
            let mut flag = Flag::new(value).with_origin(FlagOrigin::Remote);
            flag.payload = metadata
                .and_then(|metadata| metadata.get("payload"))
                .filter(|payload| !payload.is_null())
                .map(normalize_payload);
            flag.id = metadata.and_then(|m| m.get("id")).and_then(Value::as_u64);
            flag.version = metadata
                .and_then(|m| m.get("version"))
                .and_then(Value::as_u64);
            flag.reason = detail.get("reason").and_then(|reason| {
                reason
                    .get("description")
                    .or_else(|| reason.get("code"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            flag.request_id.clone_from(&request_id);
            flags.insert(key.clone(), flag);
        }
        return Ok(flags);
    }
    if let Some(values) = body.get("featureFlags").and_then(Value::as_object) {
        let empty = Map::new();
        let payloads = body
            .get("featureFlagPayloads")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (key, value) in values {
            let value = match value {
                Value::Bool(enabled) => FlagValue::Bool(*enabled),
                Value::String(variant) => FlagValue::variant(variant.as_str()),
                _ => continue,
            };
            let mut flag = Flag::new(value).with_origin(FlagOrigin::Remote);
            flag.payload = payloads
                .get(key)
                .filter(|payload| !payload.is_null())
                .map(normalize_payload);
            flag.request_id.clone_from(&request_id);
            flags.insert(key.clone(), flag);
        }
        return Ok(flags);
    }
    Err(
        Error::decode("flags answer has neither \"flags\" nor \"featureFlags\"")
            .with_provider(PROVIDER),
    )
}

/// `quotaLimited` names `feature_flags` (or, in some versions, is `true`).
fn quota_limited(body: &Value) -> bool {
    match body.get("quotaLimited") {
        Some(Value::Bool(limited)) => *limited,
        Some(Value::Array(limited)) => limited
            .iter()
            .any(|entry| entry.as_str() == Some("feature_flags")),
        _ => false,
    }
}

/// Whether the server said it could not compute some flags.
fn had_errors(body: &Value) -> bool {
    body.get("errorsWhileComputingFlags")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_answers_give_values_payloads_and_metadata() {
        let flags = parse(&json!({
            "flags": {
                "llm-params": {
                    "key": "llm-params", "enabled": true, "variant": "small",
                    "reason": {"code": "condition_match", "description": "Matched condition set 1"},
                    "metadata": {"id": 12, "version": 4, "payload": "{\"model\":\"gpt-5-mini\"}"}
                },
                "beta": {"key": "beta", "enabled": false, "variant": null, "metadata": {"id": 3, "version": 1, "payload": null}},
                "on": {"key": "on", "enabled": true}
            },
            "errorsWhileComputingFlags": false,
            "requestId": "req-1"
        }))
        .unwrap();
        let flag = &flags["llm-params"];
        assert_eq!(flag.value, FlagValue::variant("small"));
        assert_eq!(flag.payload, Some(json!({"model": "gpt-5-mini"})));
        assert_eq!((flag.id, flag.version), (Some(12), Some(4)));
        assert_eq!(flag.reason.as_deref(), Some("Matched condition set 1"));
        assert_eq!(flag.request_id.as_deref(), Some("req-1"));
        assert_eq!(flag.origin, FlagOrigin::Remote);
        assert_eq!(flags["beta"].value, FlagValue::Bool(false));
        assert_eq!(flags["beta"].payload, None);
        assert_eq!(flags["on"].value, FlagValue::Bool(true));
    }

    #[test]
    fn legacy_answers_and_quota_limits() {
        let flags = parse(&json!({
            "featureFlags": {"a": "test", "b": true},
            "featureFlagPayloads": {"a": "[1,2]"}
        }))
        .unwrap();
        assert_eq!(flags["a"].value, FlagValue::variant("test"));
        assert_eq!(flags["a"].payload, Some(json!([1, 2])));
        let err = parse(&json!({"flags": {}, "quotaLimited": ["feature_flags"]})).unwrap_err();
        assert!(err.to_string().contains("quota"), "{err}");
        assert!(parse(&json!({"unexpected": 1})).unwrap_err().is_decode());
    }
}
