//! [`OpenAiBuilder`]: keys, URLs, timeouts and headers of an [`OpenAi`] value.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, AUTHORIZATION};

use super::wire::MaxTokensField;
use super::{Inner, OpenAi};
use crate::provider::transport::{
    http_setters, secret_header, Defaults, HttpOptions, Resolved, Transport,
};
use crate::provider::OpenAiResponses;
use crate::util::secret::Secret;
use crate::{Error, Result};

/// OpenAI's API, where [`OpenAi::from_env`] goes unless `OPENAI_BASE_URL` says otherwise.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Default)]
enum Flavor {
    /// OpenAI itself; key and base URL fall back to the environment.
    #[default]
    OpenAi,
    /// A server speaking the same protocol; the key is optional and never read from the
    /// environment (an OpenAI key must not leak to another host).
    Compatible,
    /// An Azure OpenAI deployment: `api-key` header and `api-version` query parameter.
    Azure { api_version: String },
}

/// Builds an [`OpenAi`] value. Setters never fail; the first invalid input comes back from
/// [`build`](OpenAiBuilder::build).
///
/// Precedence: what the code sets, then the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`;
/// only for OpenAI itself), then the defaults.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::provider::OpenAi;
///
/// let model = OpenAi::builder()
///     .api_key("sk-test")
///     .base_url("http://127.0.0.1:8080/v1")
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(60))
///     .header("OpenAI-Organization", "org-123")
///     .build()?;
/// assert_eq!(traced_llm::LlmModel::provider(&model), "openai");
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct OpenAiBuilder {
    flavor: Flavor,
    http: HttpOptions,
    max_completion_tokens: Option<bool>,
}

impl fmt::Debug for OpenAiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("OpenAiBuilder");
        debug.field("flavor", &self.flavor);
        self.http.debug_fields(&mut debug);
        debug
            .field("max_completion_tokens", &self.max_completion_tokens)
            .finish()
    }
}

impl OpenAiBuilder {
    pub(super) fn compatible(provider: String, base_url: String) -> Self {
        let mut builder = Self {
            flavor: Flavor::Compatible,
            ..Self::default()
        };
        builder.http.provider = Some(provider);
        builder.http.base_url = Some(base_url);
        builder
    }

    pub(super) fn azure(deployment_url: String, api_version: String, api_key: String) -> Self {
        let mut builder = Self {
            flavor: Flavor::Azure { api_version },
            ..Self::default()
        };
        builder.http.provider = Some("azure".to_owned());
        builder.http.base_url = Some(deployment_url);
        builder.http.api_key = Some(Secret::new(api_key));
        builder
    }

    http_setters! {
        /// The API key (sent as `Authorization: Bearer …`, or `api-key` for Azure). It is
        /// scrubbed from every error this provider returns.
        api_key;
        /// The base URL that `/chat/completions` and `/embeddings` are appended to, e.g.
        /// `http://127.0.0.1:8000/v1`.
        base_url;
        /// The provider name reported as `$ai_provider` (`openai` by default).
        provider;
        /// A header sent with every call (`OpenAI-Organization`, `HTTP-Referer`, ...).
        header;
    }

    /// Whether the output-token limit is sent as `max_completion_tokens` (OpenAI's current
    /// name, the only one its reasoning models accept) or `max_tokens` (what most compatible
    /// servers know). By default the former for `api.openai.com` and Azure, the latter
    /// elsewhere.
    pub fn max_completion_tokens(mut self, yes: bool) -> Self {
        self.max_completion_tokens = Some(yes);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing (OpenAI and Azure) or unusable, the base
    /// URL is malformed (or `https` in a build without the `rustls` or `native-tls` feature),
    /// a header is invalid, or the HTTP client cannot be built.
    pub fn build(self) -> Result<OpenAi> {
        let max_completion_tokens = self.max_completion_tokens;
        let parts = self.parts()?;
        let chat_url = parts
            .options
            .base_url
            .join("/chat/completions", &parts.query())?;
        let embeddings_url = parts.options.base_url.join("/embeddings", &parts.query())?;
        let official = parts.azure || chat_url.host_str() == Some("api.openai.com");
        let max_tokens_field = if max_completion_tokens.unwrap_or(official) {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        };
        Ok(OpenAi {
            inner: Arc::new(Inner {
                transport: Transport::new(parts.options, parts.headers)?,
                chat_url,
                embeddings_url,
                max_tokens_field,
            }),
        })
    }

    /// Checks the settings and builds a client of the Responses API (`/responses`) with them;
    /// see [`OpenAiResponses`]. For Azure, the deployment URL given to [`OpenAi::azure`] names
    /// the resource: calls go to `https://{resource}.openai.azure.com/openai/responses` with the
    /// same `api-version`, and the request's model is the deployment.
    ///
    /// # Errors
    /// As [`build`](OpenAiBuilder::build).
    pub fn build_responses(self) -> Result<OpenAiResponses> {
        let parts = self.parts()?;
        let base = parts.options.base_url.as_str();
        let responses_url = match base.find("/openai/deployments/") {
            // Azure's Responses route is the resource's, not the deployment's.
            Some(at) if parts.azure => {
                let root =
                    crate::util::url::BaseUrl::parse(&base[..at + "/openai".len()], "base url")?;
                root.join("/responses", &parts.query())?
            }
            _ => parts.options.base_url.join("/responses", &parts.query())?,
        };
        let embeddings_url = parts.options.base_url.join("/embeddings", &parts.query())?;
        Ok(OpenAiResponses::new(
            Transport::new(parts.options, parts.headers)?,
            responses_url,
            embeddings_url,
        ))
    }

    /// The resolved options, the auth headers and the query of the flavor.
    fn parts(self) -> Result<Parts> {
        let is_openai = matches!(self.flavor, Flavor::OpenAi);
        let options = self.http.resolve(&Defaults {
            provider: "openai",
            base_url: DEFAULT_OPENAI_BASE_URL,
            // Only OpenAI itself reads the environment: an OpenAI key must not go elsewhere.
            api_key_env: is_openai.then_some("OPENAI_API_KEY"),
            base_url_env: is_openai.then_some("OPENAI_BASE_URL"),
        })?;

        let mut headers = HeaderMap::new();
        let mut api_version = None;
        match self.flavor {
            Flavor::Azure {
                api_version: version,
            } => {
                let key = options.require_api_key()?;
                headers.insert(HeaderName::from_static("api-key"), secret_header("", key)?);
                if version.trim().is_empty() {
                    return Err(Error::builder("azure needs an api version"));
                }
                api_version = Some(version);
            }
            Flavor::OpenAi => {
                let key = options.require_api_key()?;
                headers.insert(AUTHORIZATION, secret_header("Bearer ", key)?);
            }
            Flavor::Compatible => {
                if let Some(key) = &options.api_key {
                    headers.insert(AUTHORIZATION, secret_header("Bearer ", key)?);
                }
            }
        }
        Ok(Parts {
            azure: api_version.is_some(),
            options,
            headers,
            api_version,
        })
    }
}

/// What every API of the builder shares.
struct Parts {
    options: Resolved,
    headers: HeaderMap,
    azure: bool,
    api_version: Option<String>,
}

impl Parts {
    fn query(&self) -> Vec<(&str, &str)> {
        match &self.api_version {
            Some(version) => vec![("api-version", version.as_str())],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LlmModel;

    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    #[test]
    fn without_tls_https_is_a_builder_error_naming_the_features() {
        let err = OpenAi::builder()
            .api_key("sk-k")
            .base_url(DEFAULT_OPENAI_BASE_URL)
            .build()
            .unwrap_err();
        assert!(err.is_builder());
        assert!(
            err.message().contains("`rustls` or `native-tls` feature"),
            "{err}"
        );
        let model = OpenAi::compatible("ollama", "http://127.0.0.1:11434/v1")
            .build()
            .unwrap();
        assert_eq!(model.base_url(), "http://127.0.0.1:11434/v1");
    }

    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    #[test]
    fn with_tls_https_is_accepted() {
        let model = OpenAi::builder()
            .api_key("sk-k")
            .base_url("https://api.example.com/v1")
            .build()
            .unwrap();
        assert_eq!(model.base_url(), "https://api.example.com/v1");
    }
}
