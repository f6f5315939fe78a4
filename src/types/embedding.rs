use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Usage;
use crate::record::CallContext;

/// An embedding call, independent of any provider.
///
/// ```
/// use traced_llm::types::EmbeddingRequest;
///
/// let request = EmbeddingRequest::new("text-embedding-3-small", ["first text", "second text"]);
/// assert_eq!(request.input.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// The model name.
    pub model: String,
    /// The texts to embed.
    pub input: Vec<String>,
    /// The number of dimensions wanted, where the model can shorten its vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Provider parameters this type does not name, passed through untouched.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// Who made the call and where it belongs; read by
    /// [`TracedModel`](crate::TracedModel), ignored by providers.
    #[serde(skip)]
    pub context: CallContext,
}

impl EmbeddingRequest {
    /// A request to embed `input` with `model`.
    pub fn new(
        model: impl Into<String>,
        input: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            model: model.into(),
            input: input.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sets the number of dimensions.
    #[must_use]
    pub fn dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Sets who made the call and where it belongs.
    #[must_use]
    pub fn context(mut self, context: CallContext) -> Self {
        self.context = context;
        self
    }
}

/// The answer to an embedding call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingResponse {
    /// The model that answered.
    pub model: Option<String>,
    /// One vector per input, in input order.
    pub embeddings: Vec<Vec<f32>>,
    /// Token counts (embeddings only have input tokens).
    pub usage: Usage,
}

impl EmbeddingResponse {
    /// A response holding `embeddings`.
    pub fn new(embeddings: Vec<Vec<f32>>, usage: Usage) -> Self {
        Self {
            model: None,
            embeddings,
            usage,
        }
    }
}
