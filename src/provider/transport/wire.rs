//! What the providers' wire formats share: request bodies in which the caller's `extra`
//! parameters win, tool declarations, and lenient token counts in answers.
//!
//! Bodies are serialized straight from the borrowed request through `Serialize` impls, with no
//! `serde_json::Value` tree in between.

// Each provider uses some of these; a build with one provider leaves the others' unused.
#![cfg_attr(
    not(all(feature = "openai", feature = "anthropic", feature = "gemini")),
    allow(dead_code)
)]

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::types::Tool;

/// Writes the fields of a request body where the caller's `extra` parameters win: a field whose
/// key `extra` holds is left out, so the body has no duplicate keys, and `extra` is written
/// after the typed fields.
pub(crate) struct Body<'a, M> {
    map: M,
    extra: &'a Map<String, Value>,
}

impl<'a, M: SerializeMap> Body<'a, M> {
    /// Opens the body's JSON object.
    pub(crate) fn start<S>(serializer: S, extra: &'a Map<String, Value>) -> Result<Self, S::Error>
    where
        S: Serializer<SerializeMap = M>,
    {
        Ok(Self {
            map: serializer.serialize_map(None)?,
            extra,
        })
    }

    /// A typed field, unless `extra` holds `key`.
    pub(crate) fn field<V: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &V,
    ) -> Result<(), M::Error> {
        if self.extra.contains_key(key) {
            return Ok(());
        }
        self.map.serialize_entry(key, value)
    }

    /// A typed field that is only written when it is set.
    pub(crate) fn optional<V: Serialize>(
        &mut self,
        key: &str,
        value: Option<V>,
    ) -> Result<(), M::Error> {
        match value {
            Some(value) => self.field(key, &value),
            None => Ok(()),
        }
    }

    /// The `extra` parameters but the keys in `own`, which the provider decides itself (e.g.
    /// `stream`): it writes them with [`forced`](Body::forced), or leaves them out.
    pub(crate) fn extra_except(&mut self, own: &[&str]) -> Result<(), M::Error> {
        for (key, value) in self.extra {
            if !own.contains(&key.as_str()) {
                self.map.serialize_entry(key, value)?;
            }
        }
        Ok(())
    }

    /// A field written whatever `extra` says; only for keys passed to
    /// [`extra_except`](Body::extra_except), so that none is written twice.
    pub(crate) fn forced<V: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &V,
    ) -> Result<(), M::Error> {
        self.map.serialize_entry(key, value)
    }

    /// Closes the object.
    pub(crate) fn end(self) -> Result<M::Ok, M::Error> {
        self.map.end()
    }
}

/// Serializes the items of an iterator as a JSON array, without collecting them.
pub(crate) struct Seq<I>(pub(crate) I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in self.0.clone() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

/// A JSON object of string values, e.g. `{"type": "text", "text": …}`: the small fixed shapes
/// every wire format is full of.
pub(crate) struct StrMap<'a, const N: usize>(pub(crate) [(&'static str, &'a str); N]);

impl<const N: usize> Serialize for StrMap<'_, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(N))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A tool as both APIs declare it: `name`, `description` when there is one, and the JSON Schema
/// of its arguments under the provider's key (`parameters`, `input_schema`).
pub(crate) struct ToolSpec<'a> {
    pub(crate) tool: &'a Tool,
    pub(crate) schema_key: &'static str,
}

impl Serialize for ToolSpec<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.tool.name)?;
        if let Some(description) = &self.tool.description {
            map.serialize_entry("description", description)?;
        }
        map.serialize_entry(self.schema_key, &self.tool.parameters)?;
        map.end()
    }
}

/// A token count as servers write it: a number, but a few write `12.0` or `"12"`. Anything
/// else reads as "not stated" rather than failing the whole answer over its usage.
pub(crate) fn lenient_count<'de, D>(deserializer: D) -> std::result::Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|value| value.is_finite() && *value >= 0.0)
                .map(|value| value.round() as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
}

/// An amount in USD as servers write it: a number, or a number in a string. Anything else, or
/// a negative or non-finite amount, reads as "not stated".
pub(crate) fn lenient_usd<'de, D>(deserializer: D) -> std::result::Result<Option<f64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    let amount = match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    Ok(amount.filter(|usd: &f64| usd.is_finite() && *usd >= 0.0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Example<'a> {
        extra: &'a Map<String, Value>,
    }

    impl Serialize for Example<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut body = Body::start(serializer, self.extra)?;
            body.field("model", "m")?;
            body.optional("seed", Some(7))?;
            body.optional::<u32>("absent", None)?;
            body.extra_except(&["stream"])?;
            body.forced("stream", &true)?;
            body.end()
        }
    }

    #[test]
    fn extra_wins_and_no_key_is_written_twice() {
        let extra = json!({"model": "other", "stream": false, "x": 1});
        let bytes = serde_json::to_vec(&Example {
            extra: extra.as_object().unwrap(),
        })
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"stream\"").count(), 1, "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"model": "other", "seed": 7, "x": 1, "stream": true})
        );
    }

    #[test]
    fn tools_are_declared_under_the_providers_key() {
        let tool = Tool::new("f", "does f", json!({"type": "object"}));
        let spec = ToolSpec {
            tool: &tool,
            schema_key: "input_schema",
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"name": "f", "description": "does f", "input_schema": {"type": "object"}})
        );
        assert_eq!(
            serde_json::to_value(Seq([1, 2].iter())).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            serde_json::to_value(StrMap([("type", "text"), ("text", "hi")])).unwrap(),
            json!({"type": "text", "text": "hi"})
        );
    }
}
