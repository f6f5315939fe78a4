//! Provider-neutral request, response, stream and usage types.

mod embedding;
mod params;
mod request;
mod response;
mod stream;
mod usage;

pub use self::embedding::{EmbeddingRequest, EmbeddingResponse};
pub use self::params::{ModelParams, ParamsError};
pub use self::request::{
    ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice,
};
pub use self::response::ChatResponse;
pub use self::stream::{ChatStream, StreamAccumulator, StreamEvent, TextStream};
pub use self::usage::Usage;
