//! Flag definitions as PostHog's local-evaluation endpoint sends them, read once per poll into
//! a form that evaluates without parsing (regexes compiled, operators resolved).

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

/// Every flag of a project, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Definitions {
    pub(crate) flags: HashMap<String, FlagDefinition>,
    /// Group type index (as PostHog writes it, a decimal string) to group type name.
    pub(crate) group_types: HashMap<String, String>,
    /// Flags that could not be read, by key: local evaluation leaves them to the server.
    pub(crate) unreadable: Vec<String>,
}

/// One flag's targeting.
#[derive(Debug, Clone)]
pub(crate) struct FlagDefinition {
    pub(crate) key: String,
    pub(crate) id: Option<u64>,
    pub(crate) version: Option<u64>,
    pub(crate) active: bool,
    /// Experience continuity needs the server's memory of past answers.
    pub(crate) experience_continuity: bool,
    /// Bucketing by device id, which a server-side call does not have.
    pub(crate) device_bucketing: bool,
    /// The group type index the flag aggregates by; `None` for persons.
    pub(crate) aggregation: Option<i64>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) variants: Vec<Variant>,
    /// Payloads by value: `"true"`, or a variant key.
    pub(crate) payloads: Map<String, Value>,
    /// Stop at the first condition whose properties match but whose rollout excludes.
    pub(crate) early_exit: bool,
}

/// One condition set: properties that must all match, then a rollout.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) properties: Vec<PropertyFilter>,
    pub(crate) rollout_percentage: Option<f64>,
    pub(crate) variant: Option<String>,
    /// A group type index of the condition's own (mixed targeting); `None` when it has none.
    pub(crate) aggregation: Option<Option<i64>>,
}

/// A variant and its share of the rollout, in percent.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) key: String,
    pub(crate) rollout_percentage: f64,
}

/// One property filter.
#[derive(Debug, Clone)]
pub(crate) struct PropertyFilter {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) operator: Operator,
    pub(crate) kind: FilterKind,
    /// For a flag filter: the flags to evaluate first, the referenced one last; empty when the
    /// server found a cycle, `None` when it sent none.
    pub(crate) dependency_chain: Option<Vec<String>>,
}

/// What a filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKind {
    /// A person's or group's property.
    Property,
    /// Membership of a cohort: the server's to decide.
    Cohort,
    /// Another flag's value.
    Flag,
}

/// The comparison a filter makes.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    Exact,
    IsNot,
    IsSet,
    IsNotSet,
    IContains,
    NotIContains,
    /// The pattern, or `None` when this engine cannot compile it.
    Regex(Option<Box<Regex>>),
    NotRegex(Option<Box<Regex>>),
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    DateBefore,
    DateAfter,
    SemverEq,
    SemverNeq,
    SemverGt,
    SemverGte,
    SemverLt,
    SemverLte,
    SemverTilde,
    SemverCaret,
    SemverWildcard,
    FlagEvaluatesTo,
    /// An operator this engine does not know: the server decides.
    Unknown,
}

impl Operator {
    fn parse(name: &str, value: &Value) -> Self {
        let pattern = || {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Regex::new(&text).ok().map(Box::new)
        };
        match name {
            "exact" => Operator::Exact,
            "is_not" => Operator::IsNot,
            "is_set" => Operator::IsSet,
            "is_not_set" => Operator::IsNotSet,
            "icontains" => Operator::IContains,
            "not_icontains" => Operator::NotIContains,
            "regex" => Operator::Regex(pattern()),
            "not_regex" => Operator::NotRegex(pattern()),
            "starts_with" => Operator::StartsWith,
            "not_starts_with" => Operator::NotStartsWith,
            "ends_with" => Operator::EndsWith,
            "not_ends_with" => Operator::NotEndsWith,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            "is_date_before" => Operator::DateBefore,
            "is_date_after" => Operator::DateAfter,
            "semver_eq" => Operator::SemverEq,
            "semver_neq" => Operator::SemverNeq,
            "semver_gt" => Operator::SemverGt,
            "semver_gte" => Operator::SemverGte,
            "semver_lt" => Operator::SemverLt,
            "semver_lte" => Operator::SemverLte,
            "semver_tilde" => Operator::SemverTilde,
            "semver_caret" => Operator::SemverCaret,
            "semver_wildcard" => Operator::SemverWildcard,
            "flag_evaluates_to" => Operator::FlagEvaluatesTo,
            _ => Operator::Unknown,
        }
    }
}

impl Definitions {
    /// Reads the local-evaluation answer (`{"flags": [...], "group_type_mapping": {...}}`).
    /// A flag that cannot be read is listed in [`Definitions::unreadable`], never fatal.
    pub(crate) fn from_json(value: &Value) -> Result<Self, &'static str> {
        let object = value
            .as_object()
            .ok_or("flag definitions must be a json object")?;
        let flags = object
            .get("flags")
            .and_then(Value::as_array)
            .ok_or("flag definitions have no \"flags\" list")?;
        let mut definitions = Definitions::default();
        for flag in flags {
            match FlagDefinition::from_json(flag) {
                Ok(definition) => {
                    definitions.flags.insert(definition.key.clone(), definition);
                }
                Err(()) => {
                    if let Some(key) = flag.get("key").and_then(Value::as_str) {
                        definitions.unreadable.push(key.to_owned());
                    }
                }
            }
        }
        if let Some(mapping) = object.get("group_type_mapping").and_then(Value::as_object) {
            for (index, name) in mapping {
                if let Some(name) = name.as_str() {
                    definitions
                        .group_types
                        .insert(index.clone(), name.to_owned());
                }
            }
        }
        Ok(definitions)
    }

    /// The group type named by `index`.
    pub(crate) fn group_type(&self, index: i64) -> Option<&str> {
        self.group_types.get(&index.to_string()).map(String::as_str)
    }
}

impl FlagDefinition {
    fn from_json(value: &Value) -> Result<Self, ()> {
        let key = value.get("key").and_then(Value::as_str).ok_or(())?;
        let empty = Map::new();
        let filters = match value.get("filters") {
            Some(Value::Object(filters)) => filters,
            None | Some(Value::Null) => &empty,
            Some(_) => return Err(()),
        };
        let conditions = match filters.get("groups") {
            Some(Value::Array(groups)) => groups
                .iter()
                .map(Condition::from_json)
                .collect::<Result<Vec<_>, ()>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(()),
        };
        let variants = match filters
            .get("multivariate")
            .and_then(|multivariate| multivariate.get("variants"))
        {
            Some(Value::Array(variants)) => variants
                .iter()
                .map(|variant| {
                    Ok(Variant {
                        key: variant
                            .get("key")
                            .and_then(Value::as_str)
                            .ok_or(())?
                            .to_owned(),
                        rollout_percentage: variant
                            .get("rollout_percentage")
                            .and_then(Value::as_f64)
                            .ok_or(())?,
                    })
                })
                .collect::<Result<Vec<_>, ()>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(()),
        };
        let bucketing = value
            .get("bucketing_identifier")
            .or_else(|| filters.get("bucketing_identifier"))
            .and_then(Value::as_str);
        Ok(FlagDefinition {
            key: key.to_owned(),
            id: value.get("id").and_then(Value::as_u64),
            version: value.get("version").and_then(Value::as_u64),
            active: value
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            experience_continuity: value
                .get("ensure_experience_continuity")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            device_bucketing: bucketing == Some("device_id"),
            aggregation: filters
                .get("aggregation_group_type_index")
                .and_then(Value::as_i64),
            conditions,
            variants,
            payloads: filters
                .get("payloads")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            early_exit: filters
                .get("early_exit")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

impl Condition {
    fn from_json(value: &Value) -> Result<Self, ()> {
        let properties = match value.get("properties") {
            Some(Value::Array(properties)) => properties
                .iter()
                .map(PropertyFilter::from_json)
                .collect::<Result<Vec<_>, ()>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(()),
        };
        let rollout_percentage = match value.get("rollout_percentage") {
            None | Some(Value::Null) => None,
            Some(percentage) => Some(percentage.as_f64().ok_or(())?),
        };
        let aggregation = value
            .as_object()
            .and_then(|condition| condition.get("aggregation_group_type_index"))
            .map(Value::as_i64);
        Ok(Condition {
            properties,
            rollout_percentage,
            variant: value
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_owned),
            aggregation,
        })
    }
}

impl PropertyFilter {
    fn from_json(value: &Value) -> Result<Self, ()> {
        let key = match value.get("key") {
            Some(Value::String(key)) => key.clone(),
            Some(Value::Number(key)) => key.to_string(),
            _ => return Err(()),
        };
        let filter_value = value.get("value").cloned().unwrap_or(Value::Null);
        let operator = value
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or("exact");
        let kind = match value.get("type").and_then(Value::as_str) {
            Some("cohort") => FilterKind::Cohort,
            Some("flag") => FilterKind::Flag,
            _ => FilterKind::Property,
        };
        Ok(PropertyFilter {
            operator: Operator::parse(operator, &filter_value),
            key,
            value: filter_value,
            kind,
            dependency_chain: value.get("dependency_chain").and_then(Value::as_array).map(
                |chain| {
                    chain
                        .iter()
                        .filter_map(|key| key.as_str().map(str::to_owned))
                        .collect()
                },
            ),
        })
    }
}
