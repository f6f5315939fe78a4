//! Model parameters from JSON: a flag's payload or a prompt's stored config, applied to a
//! request.

use serde_json::{Map, Value};

use super::request::{ChatRequest, ResponseFormat};

/// Model parameters read from a JSON object, such as an A/B test's variant payload
/// (`{"model": "gpt-5-mini", "temperature": 0.3, "max_tokens": 400}`) or a prompt's stored
/// config.
///
/// The keys [`ChatRequest`] names become typed fields: `model`, `temperature`, `max_tokens`
/// (or `max_completion_tokens`), `top_p`, `stop` (a string or a list), `seed`,
/// `frequency_penalty`, `presence_penalty` and `response_format`. Every other key goes to
/// [`ChatRequest::extra`], passed to the provider untouched. A `null` clears the parameter.
///
/// ```
/// use serde_json::json;
/// use traced_llm::types::ModelParams;
/// use traced_llm::ChatRequest;
///
/// let params = ModelParams::from_json(&json!({
///     "model": "gpt-5-mini",
///     "temperature": 0.3,
///     "max_tokens": 400,
///     "service_tier": "flex",
/// }))?;
/// let mut request = ChatRequest::new("gpt-5").temperature(1.0);
/// params.apply(&mut request);
/// assert_eq!(request.model, "gpt-5-mini");
/// assert_eq!(request.temperature, Some(0.3));
/// assert_eq!(request.max_tokens, Some(400));
/// assert_eq!(request.extra["service_tier"], "flex");
///
/// // A bad payload is refused whole.
/// let err = ModelParams::from_json(&json!({"temperature": "hot"})).unwrap_err();
/// assert_eq!(err.to_string(), "invalid model parameter `temperature`: expected a number >= 0, got a string");
/// # Ok::<(), traced_llm::types::ParamsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelParams {
    /// The model; `None` keeps the request's.
    pub model: Option<String>,
    /// Sampling temperature; `Some(None)` clears it.
    pub temperature: Option<Option<f64>>,
    /// Output token limit; `Some(None)` clears it.
    pub max_tokens: Option<Option<u32>>,
    /// Nucleus sampling; `Some(None)` clears it.
    pub top_p: Option<Option<f64>>,
    /// Stop sequences; `Some(vec![])` clears them.
    pub stop: Option<Vec<String>>,
    /// Sampling seed; `Some(None)` clears it.
    pub seed: Option<Option<i64>>,
    /// Frequency penalty; `Some(None)` clears it.
    pub frequency_penalty: Option<Option<f64>>,
    /// Presence penalty; `Some(None)` clears it.
    pub presence_penalty: Option<Option<f64>>,
    /// The shape of the answer; `Some(None)` clears it.
    pub response_format: Option<Option<ResponseFormat>>,
    /// Every other key, for [`ChatRequest::extra`]; a `null` removes the key there.
    pub extra: Map<String, Value>,
}

/// Why a JSON value is not a set of model parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The value is not a JSON object (nor a string holding one).
    #[error("model parameters must be a json object, got {found}")]
    NotAnObject {
        /// What it was: `a string`, `an array`, ...
        found: &'static str,
    },
    /// A known parameter has the wrong type or an impossible value.
    #[error("invalid model parameter `{key}`: expected {expected}, got {found}")]
    InvalidField {
        /// The parameter.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: String,
    },
}

impl ParamsError {
    /// The parameter at fault, for [`ParamsError::InvalidField`].
    pub fn key(&self) -> Option<&str> {
        match self {
            ParamsError::InvalidField { key, .. } => Some(key),
            ParamsError::NotAnObject { .. } => None,
        }
    }
}

impl ModelParams {
    /// Reads parameters from a JSON object, or from a string holding one (PostHog stores
    /// payloads as JSON text).
    ///
    /// # Errors
    /// [`ParamsError`] for anything but an object, and for the first known key whose value
    /// has the wrong type or range.
    pub fn from_json(value: &Value) -> Result<Self, ParamsError> {
        match value {
            Value::Object(object) => Self::from_object(object),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => Self::from_object(&object),
                _ => Err(ParamsError::NotAnObject { found: "a string" }),
            },
            other => Err(ParamsError::NotAnObject {
                found: kind_of(other),
            }),
        }
    }

    fn from_object(object: &Map<String, Value>) -> Result<Self, ParamsError> {
        let mut params = ModelParams::default();
        for (key, value) in object {
            match key.as_str() {
                "model" => match value {
                    Value::String(model) if !model.trim().is_empty() => {
                        params.model = Some(model.trim().to_owned());
                    }
                    _ => return Err(invalid(key, "a non-empty string", value)),
                },
                "temperature" => params.temperature = Some(number(key, value, Range::NonNegative)?),
                "top_p" => params.top_p = Some(number(key, value, Range::Unit)?),
                "frequency_penalty" => {
                    params.frequency_penalty = Some(number(key, value, Range::Penalty)?);
                }
                "presence_penalty" => {
                    params.presence_penalty = Some(number(key, value, Range::Penalty)?);
                }
                "max_tokens" | "max_completion_tokens" => {
                    params.max_tokens = Some(match value {
                        Value::Null => None,
                        _ => Some(
                            value
                                .as_u64()
                                .filter(|&tokens| tokens >= 1)
                                .and_then(|tokens| u32::try_from(tokens).ok())
                                .ok_or_else(|| invalid(key, "a whole number >= 1", value))?,
                        ),
                    });
                }
                "seed" => {
                    params.seed = Some(match value {
                        Value::Null => None,
                        _ => Some(
                            value
                                .as_i64()
                                .ok_or_else(|| invalid(key, "a whole number", value))?,
                        ),
                    });
                }
                "stop" => {
                    params.stop = Some(match value {
                        Value::Null => Vec::new(),
                        Value::String(stop) => vec![stop.clone()],
                        Value::Array(items) => items
                            .iter()
                            .map(|item| item.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| invalid(key, "a string or a list of strings", value))?,
                        _ => return Err(invalid(key, "a string or a list of strings", value)),
                    });
                }
                "response_format" => {
                    params.response_format = Some(match value {
                        Value::Null => None,
                        _ => Some(response_format(key, value)?),
                    });
                }
                _ => {
                    params.extra.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(params)
    }

    /// Whether applying these parameters changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ModelParams::default()
    }

    /// Sets every parameter these name on `request`, leaving the others as they are.
    pub fn apply(&self, request: &mut ChatRequest) {
        if let Some(model) = &self.model {
            request.model.clone_from(model);
        }
        if let Some(value) = self.temperature {
            request.temperature = value;
        }
        if let Some(value) = self.max_tokens {
            request.max_tokens = value;
        }
        if let Some(value) = self.top_p {
            request.top_p = value;
        }
        if let Some(stop) = &self.stop {
            request.stop.clone_from(stop);
        }
        if let Some(value) = self.seed {
            request.seed = value;
        }
        if let Some(value) = self.frequency_penalty {
            request.frequency_penalty = value;
        }
        if let Some(value) = self.presence_penalty {
            request.presence_penalty = value;
        }
        if let Some(format) = &self.response_format {
            request.response_format.clone_from(format);
        }
        for (key, value) in &self.extra {
            if value.is_null() {
                request.extra.remove(key);
            } else {
                request.extra.insert(key.clone(), value.clone());
            }
        }
    }
}

impl ChatRequest {
    /// Applies model parameters given as JSON (a flag's payload, a prompt's config): see
    /// [`ModelParams`].
    ///
    /// # Errors
    /// [`ParamsError`] when `params` is not a valid parameter object; the request is then
    /// left exactly as it was.
    ///
    /// ```
    /// use serde_json::json;
    /// use traced_llm::ChatRequest;
    ///
    /// let mut request = ChatRequest::new("gpt-5").temperature(1.0);
    /// assert!(request.apply_params(&json!({"model": "gpt-5-mini", "temperature": -1})).is_err());
    /// assert_eq!((request.model.as_str(), request.temperature), ("gpt-5", Some(1.0)));
    /// ```
    pub fn apply_params(&mut self, params: &Value) -> Result<(), ParamsError> {
        ModelParams::from_json(params)?.apply(self);
        Ok(())
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(key: &str, expected: &'static str, value: &Value) -> ParamsError {
    let found = match value {
        Value::Number(number) => format!("{number}"),
        other => kind_of(other).to_owned(),
    };
    ParamsError::InvalidField {
        key: key.to_owned(),
        expected,
        found,
    }
}

/// The values a sampling parameter may take.
#[derive(Clone, Copy)]
enum Range {
    NonNegative,
    Unit,
    Penalty,
}

/// A finite number within `range`, or `null` for "clear it".
fn number(key: &str, value: &Value, range: Range) -> Result<Option<f64>, ParamsError> {
    let (min, max, expected) = match range {
        Range::NonNegative => (0.0, f64::INFINITY, "a number >= 0"),
        Range::Unit => (0.0, 1.0, "a number from 0 to 1"),
        Range::Penalty => (-2.0, 2.0, "a number from -2 to 2"),
    };
    if value.is_null() {
        return Ok(None);
    }
    let number = value
        .as_f64()
        .filter(|number| number.is_finite())
        .ok_or_else(|| invalid(key, expected, value))?;
    if number < min || number > max {
        return Err(invalid(key, expected, value));
    }
    Ok(Some(number))
}

/// `"text"`, `"json_object"`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}` (OpenAI's shape), or
/// this crate's own `{"type": "json_schema", "name", "schema"}`.
fn response_format(key: &str, value: &Value) -> Result<ResponseFormat, ParamsError> {
    const EXPECTED: &str = "\"text\", \"json_object\" or a json_schema object";
    let kind = match value {
        Value::String(kind) => kind.as_str(),
        Value::Object(object) => object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(key, EXPECTED, value))?,
        _ => return Err(invalid(key, EXPECTED, value)),
    };
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = value
                .get("json_schema")
                .filter(|spec| spec.is_object())
                .unwrap_or(value);
            let name = spec.get("name").and_then(Value::as_str);
            let schema = spec.get("schema").filter(|schema| schema.is_object());
            match (name, schema) {
                (Some(name), Some(schema)) => Ok(ResponseFormat::JsonSchema {
                    name: name.to_owned(),
                    schema: schema.clone(),
                    strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
                }),
                _ => Err(invalid(key, EXPECTED, value)),
            }
        }
        _ => Err(invalid(key, EXPECTED, value)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_keys_become_fields_and_the_rest_goes_to_extra() {
        let params = ModelParams::from_json(&json!({
            "model": "gpt-5-mini",
            "temperature": 0.3,
            "max_tokens": 400,
            "top_p": 0.9,
            "stop": "END",
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": -0.5,
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        }))
        .unwrap();
        let mut request = ChatRequest::new("gpt-5").extra("service_tier", "flex");
        params.apply(&mut request);
        assert_eq!(request.model, "gpt-5-mini");
        assert_eq!(request.temperature, Some(0.3));
        assert_eq!(request.max_tokens, Some(400));
        assert_eq!(request.top_p, Some(0.9));
        assert_eq!(request.stop, ["END"]);
        assert_eq!(request.seed, Some(7));
        assert_eq!(request.frequency_penalty, Some(0.5));
        assert_eq!(request.presence_penalty, Some(-0.5));
        assert_eq!(request.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(request.extra["reasoning_effort"], "low");
        assert_eq!(request.extra["service_tier"], "flex");
    }

    #[test]
    fn payloads_stored_as_json_text_are_read() {
        let mut request = ChatRequest::new("a");
        request
            .apply_params(&json!("{\"model\":\"b\",\"max_completion_tokens\":9}"))
            .unwrap();
        assert_eq!(request.model, "b");
        assert_eq!(request.max_tokens, Some(9));
    }

    #[test]
    fn null_clears_and_absent_keeps() {
        let mut request = ChatRequest::new("a")
            .temperature(1.0)
            .max_tokens(5)
            .stop("x")
            .extra("user", "u");
        request
            .apply_params(&json!({"temperature": null, "stop": null, "user": null}))
            .unwrap();
        assert_eq!(request.temperature, None);
        assert!(request.stop.is_empty());
        assert!(!request.extra.contains_key("user"));
        assert_eq!(request.max_tokens, Some(5));
    }

    #[test]
    fn bad_payloads_are_refused_and_leave_the_request_as_it_was() {
        let cases = [
            (json!([1, 2]), "model parameters must be a json object, got an array"),
            (json!("not json"), "model parameters must be a json object, got a string"),
            (json!(3), "model parameters must be a json object, got a number"),
            (
                json!({"model": ""}),
                "invalid model parameter `model`: expected a non-empty string, got a string",
            ),
            (
                json!({"model": "ok", "temperature": -0.1}),
                "invalid model parameter `temperature`: expected a number >= 0, got -0.1",
            ),
            (
                json!({"top_p": 1.5}),
                "invalid model parameter `top_p`: expected a number from 0 to 1, got 1.5",
            ),
            (
                json!({"max_tokens": 0}),
                "invalid model parameter `max_tokens`: expected a whole number >= 1, got 0",
            ),
            (
                json!({"max_tokens": 2.5}),
                "invalid model parameter `max_tokens`: expected a whole number >= 1, got 2.5",
            ),
            (
                json!({"stop": [1]}),
                "invalid model parameter `stop`: expected a string or a list of strings, got an array",
            ),
            (
                json!({"seed": "x"}),
                "invalid model parameter `seed`: expected a whole number, got a string",
            ),
            (
                json!({"response_format": {"type": "xml"}}),
                "invalid model parameter `response_format`: expected \"text\", \"json_object\" or a json_schema object, got an object",
            ),
        ];
        for (payload, message) in cases {
            let mut request = ChatRequest::new("gpt-5").temperature(1.0).max_tokens(10);
            let before = request.clone();
            let err = request.apply_params(&payload).unwrap_err();
            assert_eq!(err.to_string(), message, "{payload}");
            assert_eq!(request, before, "{payload}");
        }
    }

    #[test]
    fn openai_json_schema_shape_is_read() {
        let params = ModelParams::from_json(&json!({"response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}
        }}))
        .unwrap();
        assert_eq!(
            params.response_format,
            Some(Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: true
            }))
        );
    }
}
