//! Feature flags: what a flag says for one person, a snapshot of several, and where they come
//! from.
//!
//! The types here know no backend. A [`FlagSource`] evaluates flags for a [`FlagRequest`] and
//! returns a [`FlagSnapshot`]; PostHog's implementation is
//! [`posthog::flags::PosthogFlags`](crate::posthog::flags::PosthogFlags) (feature `flags`).
//!
//! A snapshot does three things for an A/B test of model parameters:
//!
//! - **It answers.** [`FlagSnapshot::variant`], [`FlagSnapshot::is_enabled`] and
//!   [`FlagSnapshot::value`] read a flag; a flag the source could not evaluate reads as
//!   disabled, and [`FlagSnapshot::error`] says why.
//! - **It reports exposure.** Reading a flag through those methods reports it once per
//!   (distinct id, flag, value) to the snapshot's [`Exposures`], which experiments count as
//!   the moment a person saw the variant. [`FlagSnapshot::get`] reads without reporting.
//! - **It stamps events.** Put it on a call's [`CallContext`](crate::CallContext) (or a span,
//!   whose calls inherit it), and every event of the call carries each flag's value and the
//!   list of active flags, so every metric breaks down by variant.
//!
//! ```
//! use serde_json::json;
//! use traced_llm::flags::{Flag, FlagSnapshot, FlagValue};
//! use traced_llm::ChatRequest;
//!
//! // A snapshot made by hand; a FlagSource makes them for real.
//! let snapshot = FlagSnapshot::builder("user_42")
//!     .flag(
//!         "llm-params",
//!         Flag::new(FlagValue::variant("small")).with_payload(json!({"model": "gpt-5-mini", "temperature": 0.3})),
//!     )
//!     .build();
//! assert_eq!(snapshot.variant("llm-params"), Some("small"));
//!
//! let mut request = ChatRequest::new("gpt-5");
//! snapshot.apply_payload("llm-params", &mut request).unwrap();
//! assert_eq!(request.model, "gpt-5-mini");
//! assert_eq!(request.temperature, Some(0.3));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::{ChatRequest, ParamsError};
use crate::Error;

mod exposure;

pub use self::exposure::{Exposures, DEFAULT_MAX_EXPOSURES};

/// What a flag says for one person: off, on, or on with a variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    /// A boolean flag's answer, or a multivariate flag that is off (`false`).
    Bool(bool),
    /// The variant of a multivariate flag that is on.
    Variant(String),
}

impl FlagValue {
    /// The variant `key`.
    pub fn variant(key: impl Into<String>) -> Self {
        FlagValue::Variant(key.into())
    }

    /// Whether the flag is on: `true`, or any variant.
    pub fn is_enabled(&self) -> bool {
        match self {
            FlagValue::Bool(enabled) => *enabled,
            FlagValue::Variant(_) => true,
        }
    }

    /// The variant, when the flag is multivariate and on.
    pub fn as_variant(&self) -> Option<&str> {
        match self {
            FlagValue::Variant(variant) => Some(variant),
            FlagValue::Bool(_) => None,
        }
    }

    /// The key PostHog files a payload under: the variant, else `"true"` or `"false"`.
    pub fn payload_key(&self) -> &str {
        match self {
            FlagValue::Variant(variant) => variant,
            FlagValue::Bool(true) => "true",
            FlagValue::Bool(false) => "false",
        }
    }
}

impl Default for FlagValue {
    fn default() -> Self {
        FlagValue::Bool(false)
    }
}

impl From<bool> for FlagValue {
    fn from(enabled: bool) -> Self {
        FlagValue::Bool(enabled)
    }
}

impl From<&str> for FlagValue {
    fn from(variant: &str) -> Self {
        FlagValue::Variant(variant.to_owned())
    }
}

impl From<String> for FlagValue {
    fn from(variant: String) -> Self {
        FlagValue::Variant(variant)
    }
}

/// `true`, `false` or the variant's key.
impl fmt::Display for FlagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagValue::Bool(enabled) => write!(f, "{enabled}"),
            FlagValue::Variant(variant) => f.write_str(variant),
        }
    }
}

/// How a flag's value was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FlagOrigin {
    /// Evaluated in the process from the flag's definition.
    Local,
    /// Evaluated by the server.
    Remote,
    /// Given by the caller (a snapshot made by hand, a test).
    #[default]
    Given,
}

/// One evaluated flag: its value, its payload and where it came from.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Flag {
    /// The value.
    pub value: FlagValue,
    /// The JSON payload configured for that value, if any (for an A/B test of model
    /// parameters, e.g. `{"model": "gpt-5-mini", "temperature": 0.3}`).
    pub payload: Option<Value>,
    /// How the value was reached.
    pub origin: FlagOrigin,
    /// The flag's id at the source, when it said.
    pub id: Option<u64>,
    /// The version of the flag's definition, when the source said.
    pub version: Option<u64>,
    /// Why the flag has this value, in the source's words (`"Matched condition set 1"`).
    pub reason: Option<String>,
    /// The id of the evaluation request, for the source's own logs.
    pub request_id: Option<String>,
}

impl Flag {
    /// A flag with `value` and nothing else.
    pub fn new(value: impl Into<FlagValue>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Sets the origin.
    #[must_use]
    pub fn with_origin(mut self, origin: FlagOrigin) -> Self {
        self.origin = origin;
        self
    }
}

/// Who to evaluate flags for, and which flags.
///
/// ```
/// use traced_llm::flags::FlagRequest;
///
/// let request = FlagRequest::new("user_42")
///     .key("llm-params")
///     .person_property("plan", "pro")
///     .group("company", "acme")
///     .group_property("company", "seats", 40);
/// assert_eq!(request.keys, ["llm-params"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FlagRequest {
    /// The person (`distinct_id`): it decides rollouts and variants.
    pub distinct_id: String,
    /// The flags to evaluate; empty means every flag.
    pub keys: Vec<String>,
    /// Group analytics: group type to group key (`{"company": "acme"}`).
    pub groups: Map<String, Value>,
    /// The person's properties that targeting conditions read.
    pub person_properties: Map<String, Value>,
    /// Each group's properties, by group type.
    pub group_properties: Map<String, Value>,
}

impl FlagRequest {
    /// Every flag, for `distinct_id`.
    pub fn new(distinct_id: impl Into<String>) -> Self {
        Self {
            distinct_id: distinct_id.into(),
            ..Self::default()
        }
    }

    /// Adds a flag to evaluate (without any, every flag is).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Adds flags to evaluate.
    #[must_use]
    pub fn keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Adds a group (e.g. `("company", "acme")`).
    #[must_use]
    pub fn group(mut self, group_type: impl Into<String>, key: impl Into<Value>) -> Self {
        self.groups.insert(group_type.into(), key.into());
        self
    }

    /// Adds a person property.
    #[must_use]
    pub fn person_property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.person_properties.insert(key.into(), value.into());
        self
    }

    /// Adds a property of the group of type `group_type`.
    #[must_use]
    pub fn group_property(
        mut self,
        group_type: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        let entry = self
            .group_properties
            .entry(group_type.into())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(properties) = entry {
            properties.insert(key.into(), value.into());
        }
        self
    }

    /// Whether `key` is asked for (every key is when none are named).
    pub fn wants(&self, key: &str) -> bool {
        self.keys.is_empty() || self.keys.iter().any(|wanted| wanted == key)
    }
}

/// Evaluates flags: PostHog's client, a fixed table in tests, your own service.
///
/// `evaluate` never fails and never hangs past the source's own timeout: a flag it cannot
/// evaluate is left out of the snapshot (and so reads as disabled), and
/// [`FlagSnapshot::error`] says why.
///
/// ```
/// use traced_llm::flags::{Flag, FlagRequest, FlagSnapshot, FlagSource};
///
/// /// Everyone gets the variant "small".
/// #[derive(Debug)]
/// struct Fixed;
///
/// #[async_trait::async_trait]
/// impl FlagSource for Fixed {
///     async fn evaluate(&self, request: &FlagRequest) -> FlagSnapshot {
///         FlagSnapshot::builder(&request.distinct_id)
///             .flag("llm-params", Flag::new("small"))
///             .build()
///     }
/// }
/// # let snapshot = futures_util::FutureExt::now_or_never(Fixed.evaluate(&FlagRequest::new("u"))).unwrap();
/// # assert_eq!(snapshot.variant("llm-params"), Some("small"));
/// ```
#[async_trait]
pub trait FlagSource: Send + Sync + fmt::Debug {
    /// The flags `request` asks for, for its distinct id.
    async fn evaluate(&self, request: &FlagRequest) -> FlagSnapshot;
}

macro_rules! forward_flag_source {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: FlagSource + ?Sized> FlagSource for $ty {
            async fn evaluate(&self, request: &FlagRequest) -> FlagSnapshot {
                (**self).evaluate(request).await
            }
        }
    )*};
}

forward_flag_source!(&S, Box<S>, Arc<S>);

/// The flags of one person at one moment: what a [`FlagSource`] answered.
///
/// Cheap to clone (one `Arc`), so it can sit on every call's context. See the
/// [module docs](self) for what reading it does.
#[derive(Clone, Default)]
pub struct FlagSnapshot {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    distinct_id: Option<String>,
    groups: Map<String, Value>,
    flags: BTreeMap<String, Flag>,
    error: Option<Arc<Error>>,
    exposures: Option<Exposures>,
}

impl FlagSnapshot {
    /// An empty snapshot: every flag reads as disabled.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Starts a snapshot for `distinct_id`.
    pub fn builder(distinct_id: impl Into<String>) -> FlagSnapshotBuilder {
        FlagSnapshotBuilder {
            inner: Inner {
                distinct_id: Some(distinct_id.into()),
                ..Inner::default()
            },
        }
    }

    /// The person the flags were evaluated for.
    pub fn distinct_id(&self) -> Option<&str> {
        self.inner.distinct_id.as_deref()
    }

    /// The groups the flags were evaluated for.
    pub fn groups(&self) -> &Map<String, Value> {
        &self.inner.groups
    }

    /// A flag as evaluated, without reporting an exposure.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.inner.flags.get(key)
    }

    /// Every flag, by key, without reporting exposures.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Flag)> + '_ {
        self.inner
            .flags
            .iter()
            .map(|(key, flag)| (key.as_str(), flag))
    }

    /// How many flags the snapshot holds.
    pub fn len(&self) -> usize {
        self.inner.flags.len()
    }

    /// Whether the snapshot holds no flag.
    pub fn is_empty(&self) -> bool {
        self.inner.flags.is_empty()
    }

    /// The keys of the flags that are on, sorted.
    pub fn active_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter()
            .filter(|(_, flag)| flag.value.is_enabled())
            .map(|(key, _)| key)
    }

    /// Why some flags could not be evaluated, when that happened; those flags read as
    /// disabled.
    pub fn error(&self) -> Option<&Error> {
        self.inner.error.as_deref()
    }

    /// The flag's value (disabled when the snapshot lacks it), reporting an exposure.
    pub fn value(&self, key: &str) -> FlagValue {
        match self.read(key) {
            Some(flag) => flag.value.clone(),
            None => FlagValue::Bool(false),
        }
    }

    /// Whether the flag is on, reporting an exposure.
    pub fn is_enabled(&self, key: &str) -> bool {
        self.read(key).is_some_and(|flag| flag.value.is_enabled())
    }

    /// The flag's variant, reporting an exposure; `None` for a flag that is off, boolean, or
    /// missing.
    pub fn variant(&self, key: &str) -> Option<&str> {
        self.read(key).and_then(|flag| flag.value.as_variant())
    }

    /// The flag's variant, or `default` when it has none, reporting an exposure.
    pub fn variant_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.variant(key).unwrap_or(default)
    }

    /// The payload of the flag's value, without reporting an exposure.
    pub fn payload(&self, key: &str) -> Option<&Value> {
        self.get(key)?.payload.as_ref()
    }

    /// Applies the payload of the flag's value to `request` as model parameters (see
    /// [`ChatRequest::apply_params`]), reports the exposure, and puts this flag on the
    /// request's context so the call's event carries it.
    ///
    /// Returns the flag's value. A flag that is missing, off, or without payload leaves the
    /// parameters as they are.
    ///
    /// # Errors
    /// [`ParamsError`] when the payload is not a valid parameter object; `request` is then
    /// left exactly as it was, and no exposure is reported: the call runs with its own
    /// parameters, not the variant's.
    pub fn apply_payload(
        &self,
        key: &str,
        request: &mut ChatRequest,
    ) -> Result<FlagValue, ParamsError> {
        let Some(flag) = self.get(key) else {
            return Ok(FlagValue::Bool(false));
        };
        if let Some(payload) = flag.payload.as_ref().filter(|_| flag.value.is_enabled()) {
            let params = crate::types::ModelParams::from_json(payload)?;
            params.apply(request);
        }
        let value = self.value(key);
        let stamped = self.only([key]);
        request.context.flags = Some(match request.context.flags.take() {
            Some(existing) => stamped.merged_over(&existing),
            None => stamped,
        });
        Ok(value)
    }

    /// A snapshot of the named flags alone, sharing this one's exposures: what to stamp on
    /// events when the others are irrelevant to them.
    pub fn only<I, K>(&self, keys: I) -> FlagSnapshot
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut flags = BTreeMap::new();
        for key in keys {
            if let Some((key, flag)) = self.inner.flags.get_key_value(key.as_ref()) {
                flags.insert(key.clone(), flag.clone());
            }
        }
        FlagSnapshot {
            inner: Arc::new(Inner {
                distinct_id: self.inner.distinct_id.clone(),
                groups: self.inner.groups.clone(),
                flags,
                error: self.inner.error.clone(),
                exposures: self.inner.exposures.clone(),
            }),
        }
    }

    /// This snapshot's flags over `inherited`'s: a key both hold keeps this one's value. The
    /// person, groups, error and exposures are this snapshot's, else `inherited`'s.
    pub(crate) fn merged_over(&self, inherited: &FlagSnapshot) -> FlagSnapshot {
        if Arc::ptr_eq(&self.inner, &inherited.inner) || inherited.is_empty() {
            return self.clone();
        }
        let mut flags = inherited.inner.flags.clone();
        for (key, flag) in &self.inner.flags {
            flags.insert(key.clone(), flag.clone());
        }
        let other = inherited;
        FlagSnapshot {
            inner: Arc::new(Inner {
                distinct_id: self
                    .inner
                    .distinct_id
                    .clone()
                    .or_else(|| other.inner.distinct_id.clone()),
                groups: if self.inner.groups.is_empty() {
                    other.inner.groups.clone()
                } else {
                    self.inner.groups.clone()
                },
                flags,
                error: self
                    .inner
                    .error
                    .clone()
                    .or_else(|| other.inner.error.clone()),
                exposures: self
                    .inner
                    .exposures
                    .clone()
                    .or_else(|| other.inner.exposures.clone()),
            }),
        }
    }

    /// A flag, with its exposure reported.
    fn read(&self, key: &str) -> Option<&Flag> {
        let flag = self.inner.flags.get(key);
        if let (Some(flag), Some(exposures), Some(distinct_id)) =
            (flag, &self.inner.exposures, &self.inner.distinct_id)
        {
            exposures.report(distinct_id, &self.inner.groups, key, flag);
        }
        flag
    }
}

impl fmt::Debug for FlagSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags: BTreeMap<&str, &FlagValue> = self
            .inner
            .flags
            .iter()
            .map(|(key, flag)| (key.as_str(), &flag.value))
            .collect();
        f.debug_struct("FlagSnapshot")
            .field("distinct_id", &self.inner.distinct_id)
            .field("flags", &flags)
            .field("error", &self.inner.error)
            .field("exposures", &self.inner.exposures.is_some())
            .finish()
    }
}

/// Two snapshots are equal when they hold the same person, groups and flags.
impl PartialEq for FlagSnapshot {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.distinct_id == other.inner.distinct_id
                && self.inner.groups == other.inner.groups
                && self.inner.flags == other.inner.flags)
    }
}

/// Builds a [`FlagSnapshot`]; see [`FlagSnapshot::builder`].
#[must_use]
pub struct FlagSnapshotBuilder {
    inner: Inner,
}

impl FlagSnapshotBuilder {
    /// Adds (or replaces) a flag.
    pub fn flag(mut self, key: impl Into<String>, flag: Flag) -> Self {
        self.inner.flags.insert(key.into(), flag);
        self
    }

    /// Sets the groups the flags were evaluated for.
    pub fn groups(mut self, groups: Map<String, Value>) -> Self {
        self.inner.groups = groups;
        self
    }

    /// Records why some flags are missing.
    pub fn error(mut self, error: Error) -> Self {
        self.inner.error = Some(Arc::new(error));
        self
    }

    /// Reports exposures of this snapshot's flags to `exposures`.
    pub fn exposures(mut self, exposures: Exposures) -> Self {
        self.inner.exposures = Some(exposures);
        self
    }

    /// The snapshot.
    pub fn build(self) -> FlagSnapshot {
        FlagSnapshot {
            inner: Arc::new(self.inner),
        }
    }
}

impl fmt::Debug for FlagSnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagSnapshotBuilder")
            .field("distinct_id", &self.inner.distinct_id)
            .field("flags", &self.inner.flags.len())
            .finish_non_exhaustive()
    }
}

/// Hands the exposure of `flag` to `sink` as an event.
fn emit_exposure(
    sink: &dyn crate::sink::Sink,
    distinct_id: &str,
    groups: &Map<String, Value>,
    key: &str,
    flag: &Flag,
) {
    let mut exposure = crate::event::FlagExposure::new(distinct_id, key, flag.clone());
    exposure.envelope.groups.clone_from(groups);
    sink.capture(crate::event::Event::FlagExposure(exposure));
}
