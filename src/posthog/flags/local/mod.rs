//! Local evaluation: PostHog's targeting rules run in the process, from the flag definitions.
//!
//! For each flag: inactive flags are off; each condition set is tried in order, and the first
//! whose properties all match and whose rollout includes the person decides: its variant
//! override, else the variant the person's hash falls in, else `true`. Rollouts and variants
//! use [`hash::bucket`], so the answer is the one PostHog's server gives.
//!
//! A condition on another flag's value evaluates that flag first, from the same definitions.
//!
//! Whatever the process cannot know leaves the flag [`Outcome::Undecided`], for the server:
//! cohorts, experience continuity, device-id bucketing, unknown operators and group types,
//! properties the caller did not pass (when no other condition matches), dependencies on flags
//! it lacks or cannot decide, and dependency cycles.

use std::time::SystemTime;

use serde_json::{Map, Value};

use self::definitions::{Condition, FilterKind, FlagDefinition, Operator, PropertyFilter};
use crate::flags::{Flag, FlagOrigin, FlagRequest, FlagValue};

pub(crate) mod definitions;
pub(crate) mod hash;
mod property;

pub(crate) use self::definitions::Definitions;

/// What local evaluation concluded for one flag.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The flag's value for the person.
    Decided(Flag),
    /// Only the server can tell, for this reason.
    Undecided(&'static str),
}

/// A condition set's verdict.
enum ConditionMatch {
    Match,
    NoMatch,
    /// The properties matched; the rollout left the person out.
    OutOfRollout,
}

/// How deep flag dependencies may nest before evaluation gives up and asks the server.
const MAX_DEPENDENCY_DEPTH: usize = 16;

/// Evaluates `definition` for `request`.
pub(crate) fn evaluate(
    definitions: &Definitions,
    definition: &FlagDefinition,
    request: &FlagRequest,
    now: SystemTime,
) -> Outcome {
    evaluate_at(definitions, definition, request, now, 0)
}

fn evaluate_at(
    definitions: &Definitions,
    definition: &FlagDefinition,
    request: &FlagRequest,
    now: SystemTime,
    depth: usize,
) -> Outcome {
    if definition.experience_continuity {
        return Outcome::Undecided("experience continuity");
    }
    if !definition.active {
        return decided(definition, FlagValue::Bool(false));
    }
    if definition.device_bucketing {
        return Outcome::Undecided("bucketing by device id");
    }
    let person = person_properties(request);
    let context = Context {
        definitions,
        request,
        person: &person,
        now,
        depth,
    };
    let (bucketing, properties) = match definition.aggregation {
        None => (request.distinct_id.clone(), person.clone()),
        Some(index) => match context.group(index) {
            GroupTarget::Use(key, properties) => (key, properties),
            GroupTarget::Absent => return decided(definition, FlagValue::Bool(false)),
            GroupTarget::Undecided(why) => return Outcome::Undecided(why),
        },
    };
    match context.match_conditions(definition, &bucketing, &properties) {
        Ok(value) => decided(definition, value),
        Err(why) => Outcome::Undecided(why),
    }
}

fn decided(definition: &FlagDefinition, value: FlagValue) -> Outcome {
    let payload = definition
        .payloads
        .get(value.payload_key())
        .map(normalize_payload);
    let mut flag = Flag::new(value).with_origin(FlagOrigin::Local);
    flag.payload = payload;
    flag.id = definition.id;
    flag.version = definition.version;
    flag.reason = Some("Evaluated locally".to_owned());
    Outcome::Decided(flag)
}

/// PostHog stores payloads as JSON text; a text that holds JSON becomes that JSON.
pub(crate) fn normalize_payload(payload: &Value) -> Value {
    match payload {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| payload.clone()),
        other => other.clone(),
    }
}

/// The person's properties, with `distinct_id` added as PostHog's SDKs add it.
fn person_properties(request: &FlagRequest) -> Map<String, Value> {
    let mut properties = request.person_properties.clone();
    properties
        .entry("distinct_id")
        .or_insert_with(|| Value::String(request.distinct_id.clone()));
    properties
}

struct Context<'a> {
    definitions: &'a Definitions,
    request: &'a FlagRequest,
    person: &'a Map<String, Value>,
    now: SystemTime,
    /// How many flag dependencies deep this evaluation is.
    depth: usize,
}

enum GroupTarget {
    /// Bucket by this group key, match these properties.
    Use(String, Map<String, Value>),
    /// The caller named no group of this type: a group flag is off.
    Absent,
    Undecided(&'static str),
}

impl Context<'_> {
    fn group(&self, index: i64) -> GroupTarget {
        let Some(group_type) = self.definitions.group_type(index) else {
            return GroupTarget::Undecided("an unknown group type");
        };
        let Some(key) = self.request.groups.get(group_type) else {
            return GroupTarget::Absent;
        };
        let key = match key {
            Value::String(key) => key.clone(),
            other => other.to_string(),
        };
        let Some(Value::Object(given)) = self.request.group_properties.get(group_type) else {
            return GroupTarget::Undecided("a group whose properties the caller did not give");
        };
        let mut properties = given.clone();
        properties
            .entry("$group_key")
            .or_insert_with(|| Value::String(key.clone()));
        GroupTarget::Use(key, properties)
    }

    /// The first matching condition set's value; `false` when none matches and every one
    /// could be decided.
    fn match_conditions(
        &self,
        definition: &FlagDefinition,
        bucketing: &str,
        properties: &Map<String, Value>,
    ) -> Result<FlagValue, &'static str> {
        let mut undecided = None;
        for condition in &definition.conditions {
            // Mixed targeting: a condition may aggregate by something else than the flag.
            let target = match condition.aggregation {
                Some(aggregation) if aggregation != definition.aggregation => match aggregation {
                    Some(index) => match self.group(index) {
                        GroupTarget::Use(key, properties) => Some((key, properties)),
                        GroupTarget::Absent => continue,
                        GroupTarget::Undecided(why) => {
                            undecided = Some(why);
                            continue;
                        }
                    },
                    None => Some((self.request.distinct_id.clone(), self.person.clone())),
                },
                _ => None,
            };
            let (bucketing, properties) = match &target {
                Some((key, properties)) => (key.as_str(), properties),
                None => (bucketing, properties),
            };
            match self.match_condition(definition, condition, bucketing, properties) {
                Ok(ConditionMatch::Match) => {
                    let variant = condition
                        .variant
                        .as_ref()
                        .filter(|wanted| definition.variants.iter().any(|v| &v.key == *wanted))
                        .cloned()
                        .or_else(|| matching_variant(definition, bucketing));
                    return Ok(variant.map_or(FlagValue::Bool(true), FlagValue::Variant));
                }
                Ok(ConditionMatch::OutOfRollout) if definition.early_exit => {
                    return Ok(FlagValue::Bool(false));
                }
                Ok(_) => {}
                Err(Fatal::Server(why)) => return Err(why),
                Err(Fatal::Inconclusive(why)) => undecided = Some(why),
            }
        }
        match undecided {
            Some(why) => Err(why),
            None => Ok(FlagValue::Bool(false)),
        }
    }

    fn match_condition(
        &self,
        definition: &FlagDefinition,
        condition: &Condition,
        bucketing: &str,
        properties: &Map<String, Value>,
    ) -> Result<ConditionMatch, Fatal> {
        for filter in &condition.properties {
            let matched = match filter.kind {
                FilterKind::Cohort => return Err(Fatal::Server("a cohort")),
                FilterKind::Flag => self.dependency_matches(filter)?,
                FilterKind::Property => property::matches(filter, properties, self.now)
                    .map_err(|undecidable| Fatal::Inconclusive(undecidable.0))?,
            };
            if !matched {
                return Ok(ConditionMatch::NoMatch);
            }
        }
        if let Some(percentage) = condition.rollout_percentage {
            if hash::bucket(&definition.key, bucketing, "") > percentage / 100.0 {
                return Ok(ConditionMatch::OutOfRollout);
            }
        }
        Ok(ConditionMatch::Match)
    }
}

impl Context<'_> {
    /// A condition on another flag's value: that flag is evaluated here, and its value
    /// compared. A malformed condition does not match, as on the server.
    fn dependency_matches(&self, filter: &PropertyFilter) -> Result<bool, Fatal> {
        if !matches!(filter.operator, Operator::FlagEvaluatesTo) || filter.value.is_null() {
            return Ok(false);
        }
        match &filter.dependency_chain {
            None => return Err(Fatal::Inconclusive("a flag dependency without its chain")),
            Some(chain) if chain.is_empty() => {
                return Err(Fatal::Inconclusive("a cycle of flag dependencies"))
            }
            Some(_) => {}
        }
        if self.depth >= MAX_DEPENDENCY_DEPTH {
            return Err(Fatal::Inconclusive("flag dependencies nested too deep"));
        }
        let Some(dependency) = self.definitions.flags.get(&filter.key) else {
            return Err(Fatal::Inconclusive(
                "a dependency on a flag not in the definitions",
            ));
        };
        if dependency.active && dependency.aggregation.is_some() {
            return Err(Fatal::Inconclusive("a dependency on a group flag"));
        }
        let value = match evaluate_at(
            self.definitions,
            dependency,
            self.request,
            self.now,
            self.depth + 1,
        ) {
            Outcome::Decided(flag) => flag.value,
            Outcome::Undecided(why) => return Err(Fatal::Inconclusive(why)),
        };
        Ok(match (&value, &filter.value) {
            // Any variant counts as on; a named variant must be that one (case matters).
            (FlagValue::Variant(_), Value::Bool(expected)) => *expected,
            (FlagValue::Variant(variant), Value::String(expected)) => {
                !variant.is_empty() && variant == expected
            }
            (FlagValue::Bool(actual), Value::Bool(expected)) => actual == expected,
            _ => false,
        })
    }
}

/// Why a condition set could not be decided.
enum Fatal {
    /// Try the other condition sets; if none matches, ask the server.
    Inconclusive(&'static str),
    /// Ask the server, whatever the other sets say.
    Server(&'static str),
}

/// The variant whose share of `[0, 1)` the person's variant hash falls in.
fn matching_variant(definition: &FlagDefinition, bucketing: &str) -> Option<String> {
    if definition.variants.is_empty() {
        return None;
    }
    let hash = hash::bucket(&definition.key, bucketing, hash::VARIANT_SALT);
    let mut low = 0.0;
    for variant in &definition.variants {
        let high = low + variant.rollout_percentage / 100.0;
        if hash >= low && hash < high {
            return Some(variant.key.clone());
        }
        low = high;
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definitions(flags: Value) -> Definitions {
        Definitions::from_json(&json!({"flags": flags, "group_type_mapping": {"0": "company"}}))
            .unwrap()
    }

    fn value_of(definitions: &Definitions, key: &str, request: &FlagRequest) -> Outcome {
        evaluate(
            definitions,
            &definitions.flags[key],
            request,
            SystemTime::now(),
        )
    }

    fn decided_value(outcome: Outcome) -> FlagValue {
        match outcome {
            Outcome::Decided(flag) => flag.value,
            Outcome::Undecided(why) => panic!("undecided: {why}"),
        }
    }

    #[test]
    fn inactive_flags_are_off_and_empty_conditions_are_off() {
        let defs = definitions(json!([
            {"key": "off", "active": false, "filters": {"groups": [{"rollout_percentage": 100}]}},
            {"key": "none", "active": true, "filters": {"groups": []}},
            {"key": "all", "active": true, "filters": {"groups": [{"properties": []}]}},
        ]));
        let request = FlagRequest::new("u");
        assert_eq!(
            decided_value(value_of(&defs, "off", &request)),
            FlagValue::Bool(false)
        );
        assert_eq!(
            decided_value(value_of(&defs, "none", &request)),
            FlagValue::Bool(false)
        );
        assert_eq!(
            decided_value(value_of(&defs, "all", &request)),
            FlagValue::Bool(true)
        );
    }

    #[test]
    fn properties_then_rollout_then_payload() {
        let defs = definitions(json!([{
            "key": "beta", "active": true, "id": 7, "version": 3,
            "filters": {
                "groups": [{"properties": [{"key": "plan", "value": "pro", "type": "person"}], "rollout_percentage": 100}],
                "payloads": {"true": "{\"model\": \"gpt-5-mini\"}"}
            }
        }]));
        let pro = FlagRequest::new("u").person_property("plan", "pro");
        let Outcome::Decided(flag) = value_of(&defs, "beta", &pro) else {
            panic!()
        };
        assert_eq!(flag.value, FlagValue::Bool(true));
        assert_eq!(flag.payload, Some(json!({"model": "gpt-5-mini"})));
        assert_eq!(
            (flag.id, flag.version, flag.origin),
            (Some(7), Some(3), FlagOrigin::Local)
        );
        let free = FlagRequest::new("u").person_property("plan", "free");
        assert_eq!(
            decided_value(value_of(&defs, "beta", &free)),
            FlagValue::Bool(false)
        );
        assert!(matches!(
            value_of(&defs, "beta", &FlagRequest::new("u")),
            Outcome::Undecided(_)
        ));
    }

    #[test]
    fn distinct_id_is_a_person_property() {
        let defs = definitions(json!([{
            "key": "me", "active": true,
            "filters": {"groups": [{"properties": [{"key": "distinct_id", "value": ["u1"], "operator": "exact"}]}]}
        }]));
        assert_eq!(
            decided_value(value_of(&defs, "me", &FlagRequest::new("u1"))),
            FlagValue::Bool(true)
        );
        assert_eq!(
            decided_value(value_of(&defs, "me", &FlagRequest::new("u2"))),
            FlagValue::Bool(false)
        );
    }

    #[test]
    fn a_decided_condition_wins_over_an_undecidable_one() {
        let defs = definitions(json!([{
            "key": "f", "active": true,
            "filters": {"groups": [
                {"properties": [{"key": "missing", "value": "x"}]},
                {"properties": [{"key": "plan", "value": "pro"}]}
            ]}
        }]));
        let request = FlagRequest::new("u").person_property("plan", "pro");
        assert_eq!(
            decided_value(value_of(&defs, "f", &request)),
            FlagValue::Bool(true)
        );
        let request = FlagRequest::new("u").person_property("plan", "free");
        assert!(matches!(
            value_of(&defs, "f", &request),
            Outcome::Undecided(_)
        ));
    }

    #[test]
    fn cohorts_flags_continuity_and_unknown_operators_go_to_the_server() {
        let defs = definitions(json!([
            {"key": "c", "active": true, "filters": {"groups": [
                {"properties": [{"key": "id", "value": 5, "type": "cohort"}]},
                {"properties": []}
            ]}},
            {"key": "d", "active": true, "filters": {"groups": [{"properties": [{"key": "c", "value": true, "type": "flag", "operator": "flag_evaluates_to"}]}]}},
            {"key": "e", "active": true, "ensure_experience_continuity": true, "filters": {"groups": [{"properties": []}]}},
            {"key": "o", "active": true, "filters": {"groups": [{"properties": [{"key": "a", "value": 1, "operator": "near"}]}]}},
        ]));
        let request = FlagRequest::new("u").person_property("a", 1);
        for key in ["c", "d", "e", "o"] {
            assert!(
                matches!(value_of(&defs, key, &request), Outcome::Undecided(_)),
                "{key}"
            );
        }
    }

    #[test]
    fn flag_dependencies_are_evaluated_from_the_same_definitions() {
        let dep = |key: &str, value: Value, chain: Value| json!({"key": key, "type": "flag", "operator": "flag_evaluates_to", "value": value, "dependency_chain": chain});
        let flag = |key: &str, property: Value| json!({"key": key, "active": true, "filters": {"groups": [{"properties": [property], "rollout_percentage": 100}]}});
        let defs = definitions(json!([
            {"key": "base", "active": true, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
            {"key": "off", "active": false, "filters": {"groups": []}},
            {"key": "multi", "active": true, "filters": {
                "groups": [{"properties": [], "variant": "b"}],
                "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
            }},
            flag("needs-base", dep("base", json!(true), json!(["base"]))),
            flag("needs-off", dep("off", json!(false), json!(["off"]))),
            flag("needs-b", dep("multi", json!("b"), json!(["multi"]))),
            flag("needs-a", dep("multi", json!("a"), json!(["multi"]))),
            flag("needs-any-variant", dep("multi", json!(true), json!(["multi"]))),
            flag("chained", dep("needs-base", json!(true), json!(["base", "needs-base"]))),
            flag("cycle", dep("cycle", json!(true), json!([]))),
            flag("no-chain", json!({"key": "base", "type": "flag", "operator": "flag_evaluates_to", "value": true})),
            flag("unknown", dep("nowhere", json!(true), json!(["nowhere"]))),
            flag("malformed", json!({"key": "base", "type": "flag", "operator": "exact", "value": true, "dependency_chain": ["base"]})),
        ]));
        let request = FlagRequest::new("u");
        for (key, expected) in [
            ("needs-base", true),
            ("needs-off", true),
            ("needs-b", true),
            ("needs-a", false),
            ("needs-any-variant", true),
            ("chained", true),
            ("malformed", false),
        ] {
            assert_eq!(
                decided_value(value_of(&defs, key, &request)),
                FlagValue::Bool(expected),
                "{key}"
            );
        }
        for key in ["cycle", "no-chain", "unknown"] {
            assert!(
                matches!(value_of(&defs, key, &request), Outcome::Undecided(_)),
                "{key}"
            );
        }
    }

    #[test]
    fn group_flags_bucket_by_the_group_key() {
        let defs = definitions(json!([{
            "key": "g", "active": true,
            "filters": {"aggregation_group_type_index": 0, "groups": [{"properties": [{"key": "seats", "value": 10, "operator": "gte", "type": "group", "group_type_index": 0}], "rollout_percentage": 100}]}
        }]));
        assert_eq!(
            decided_value(value_of(&defs, "g", &FlagRequest::new("u"))),
            FlagValue::Bool(false)
        );
        let named = FlagRequest::new("u").group("company", "acme");
        assert!(matches!(
            value_of(&defs, "g", &named),
            Outcome::Undecided(_)
        ));
        let big = named.clone().group_property("company", "seats", 40);
        assert_eq!(
            decided_value(value_of(&defs, "g", &big)),
            FlagValue::Bool(true)
        );
        let small = named.group_property("company", "seats", 2);
        assert_eq!(
            decided_value(value_of(&defs, "g", &small)),
            FlagValue::Bool(false)
        );
    }

    #[test]
    fn variant_overrides_and_early_exit() {
        let defs = definitions(json!([
            {"key": "v", "active": true, "filters": {
                "groups": [{"properties": [{"key": "plan", "value": "pro"}], "variant": "b"}, {"properties": []}],
                "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}
            }},
            {"key": "x", "active": true, "filters": {"early_exit": true, "groups": [
                {"properties": [], "rollout_percentage": 0}, {"properties": []}
            ]}},
            {"key": "y", "active": true, "filters": {"groups": [
                {"properties": [], "rollout_percentage": 0}, {"properties": []}
            ]}},
        ]));
        let pro = FlagRequest::new("anyone").person_property("plan", "pro");
        assert_eq!(
            decided_value(value_of(&defs, "v", &pro)),
            FlagValue::variant("b")
        );
        assert_eq!(
            decided_value(value_of(&defs, "x", &pro)),
            FlagValue::Bool(false)
        );
        assert_eq!(
            decided_value(value_of(&defs, "y", &pro)),
            FlagValue::Bool(true)
        );
    }

    #[test]
    fn unreadable_flags_are_listed_not_fatal() {
        let defs = definitions(json!([
            {"key": "bad", "active": true, "filters": {"groups": "nope"}},
            {"key": "good", "active": true, "filters": {"groups": [{"properties": []}]}},
        ]));
        assert_eq!(defs.unreadable, ["bad"]);
        assert!(defs.flags.contains_key("good"));
        assert!(Definitions::from_json(&json!([])).is_err());
    }
}
