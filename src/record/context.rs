//! Per-call context: who made the call and where it belongs.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::PromptRef;
use crate::flags::FlagSnapshot;
use crate::pricing::ModelPrice;

/// Who made a call and where it belongs, carried on
/// [`ChatRequest::context`](crate::ChatRequest::context).
///
/// Providers ignore it; the [`Recorder`](super::Recorder) behind a
/// [`TracedModel`](crate::TracedModel) turns it into the event's distinct id, trace, session and
/// span ids, groups and custom properties. Every field is optional:
///
/// - no distinct id makes a personless event (the trace id stands in as `distinct_id`);
/// - no trace id makes the call a trace of its own, with a fresh UUID.
///
/// ```
/// use traced_llm::{CallContext, ChatRequest, Message};
///
/// let user_name = String::from("Ada");
/// let request = ChatRequest::new("gpt-4o-mini")
///     .message(Message::user("Plan my trip to Lisbon"))
///     .context(
///         CallContext::new()
///             .distinct_id("user_42")
///             .trace_id("conversation_7f3a")
///             .property("user_name", &user_name)
///             .property("message_count", 3)
///             .property("topic", "travel"),
///     );
/// assert_eq!(request.context.distinct_id.as_deref(), Some("user_42"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CallContext {
    /// The person the call is for (`distinct_id`).
    pub distinct_id: Option<String>,
    /// The trace the call belongs to (`$ai_trace_id`).
    pub trace_id: Option<String>,
    /// The session the call belongs to (`$ai_session_id`).
    pub session_id: Option<String>,
    /// This call's own span id (`$ai_span_id`).
    pub span_id: Option<String>,
    /// The span or trace this call nests under (`$ai_parent_id`).
    pub parent_id: Option<String>,
    /// A name for this call (`$ai_span_name`).
    pub span_name: Option<String>,
    /// Custom properties merged into the event.
    pub properties: Map<String, Value>,
    /// Group analytics: group type to group key (`$groups`).
    pub groups: Map<String, Value>,
    /// Privacy mode for this call: `Some(true)` sends no input or output content, `Some(false)`
    /// sends it even when the model-wide default is private, `None` follows the default.
    pub privacy_mode: Option<bool>,
    /// The price of this call's model, overriding any table: the cost is then sent to PostHog.
    pub price: Option<ModelPrice>,
    /// The feature flags this call runs under (PostHog: `$feature/<key>` and
    /// `$active_feature_flags`); flags of the enclosing span fill in the keys it lacks.
    pub flags: Option<FlagSnapshot>,
    /// The managed prompt this call used (PostHog: `$ai_prompt_name`, `$ai_prompt_version`).
    pub prompt: Option<PromptRef>,
}

impl CallContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the distinct id of the person the call is for.
    #[must_use]
    pub fn distinct_id(mut self, id: impl Into<String>) -> Self {
        self.distinct_id = Some(id.into());
        self
    }

    /// Sets the trace id.
    #[must_use]
    pub fn trace_id(mut self, id: impl Into<String>) -> Self {
        self.trace_id = Some(id.into());
        self
    }

    /// Sets the session id.
    #[must_use]
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Sets this call's span id.
    #[must_use]
    pub fn span_id(mut self, id: impl Into<String>) -> Self {
        self.span_id = Some(id.into());
        self
    }

    /// Sets the parent span or trace id.
    #[must_use]
    pub fn parent_id(mut self, id: impl Into<String>) -> Self {
        self.parent_id = Some(id.into());
        self
    }

    /// Names this call.
    #[must_use]
    pub fn span_name(mut self, name: impl Into<String>) -> Self {
        self.span_name = Some(name.into());
        self
    }

    /// Adds a custom property: any value that serializes (`&str`, `String`, `&String`,
    /// numbers, `serde_json::Value`, your own `Serialize` types).
    ///
    /// A value that cannot be represented as JSON (a map with non-string keys, a failing
    /// `Serialize` impl) is stored as `null`, and logged once.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.properties.insert(key.into(), to_value(&value));
        self
    }

    /// Adds a group (e.g. `("company", "acme")`).
    #[must_use]
    pub fn group(mut self, group_type: impl Into<String>, key: impl Serialize) -> Self {
        self.groups.insert(group_type.into(), to_value(&key));
        self
    }

    /// Prices this call at `price` (USD per million tokens), whatever the model's table says.
    #[must_use]
    pub fn price(mut self, price: ModelPrice) -> Self {
        self.price = Some(price);
        self
    }

    /// Stamps `flags` on this call's event, so its metrics break down by each flag's value.
    /// Use [`FlagSnapshot::only`] to stamp a few flags of a larger snapshot.
    #[must_use]
    pub fn flags(mut self, flags: FlagSnapshot) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Names the managed prompt this call used.
    #[must_use]
    pub fn prompt(mut self, prompt: impl Into<PromptRef>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sets privacy mode for this call.
    #[must_use]
    pub fn privacy_mode(mut self, private: bool) -> Self {
        self.privacy_mode = Some(private);
        self
    }
}

/// `value` as JSON; `null` (and one warning per process) when it has no JSON form.
pub(crate) fn to_value(value: &impl Serialize) -> Value {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    serde_json::to_value(value).unwrap_or_else(|err| {
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(target: "traced_llm", error = %err, "a property value has no JSON form and is sent as null");
        }
        Value::Null
    })
}
