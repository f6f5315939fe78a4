//! [`PosthogExporter`]: PostHog's side of the batch processor. It encodes events into
//! payloads, posts them, and says what each answer means.
//!
//! | answer | meaning |
//! |---|---|
//! | 2xx | delivered |
//! | network error, timeout, 408, 429, 5xx | the endpoint is unavailable: the payload waits (`Retry-After` honoured) |
//! | 400 | split until the event the server rejects stands alone; only it is dropped |
//! | 413, or a reset right after a large upload | split; a lone event on the AI route is shrunk to `/batch/`'s budget and sent there; otherwise dropped |
//! | 401, 403 | the key is refused: dropped, counted, reported once loudly |
//! | 404, 405 on the AI route (with [`Endpoint::Auto`]) | the server has no AI route: `/batch/` from now on, the payload re-encoded for it |
//! | anything else | dropped as rejected |

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use super::builder::{Config, Endpoint, ErrorCallback};
use super::encode::{cost, Encoder, Lane, PosthogPayload, Prefix};
use super::format::event_name;
use super::retry::parse_retry_after;
use super::stats::{DeliveryError, DeliveryErrorKind};
use crate::event::Event;
use crate::sink::batch::stats::add;
use crate::sink::batch::{Counters, DropCause, Dropped, ExportResult, Exporter};
use crate::util::http::{build_client, ClientSettings, Failure};
use crate::util::secret::Secret;
use crate::util::url::display;

const LOG_TARGET: &str = "traced_llm::posthog";
/// The longest server reason handed on.
const MAX_REASON_CHARS: usize = 200;
/// A body at least this large whose connection is reset is taken as too large: a server that
/// answers 413 before reading the body often closes the connection under the client.
pub(crate) const LARGE_UPLOAD: usize = 256 * 1024;

/// Posts PostHog payloads.
pub(crate) struct PosthogExporter {
    client: reqwest::Client,
    batch_url: reqwest::Url,
    ai_url: reqwest::Url,
    endpoint: Endpoint,
    /// Cleared for the sink's life when the server has no AI route.
    ai_route: AtomicBool,
    prefix: Prefix,
    encoder: Encoder,
    api_key: Secret,
    gzip: bool,
    on_error: Option<ErrorCallback>,
    /// The last refusal of the key, for the next flush to name.
    pub(crate) unauthorized: Mutex<Option<(Option<u16>, String)>>,
}

impl fmt::Debug for PosthogExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosthogExporter")
            .field("url", &display(self.batch_url.as_str()))
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl PosthogExporter {
    pub(crate) fn new(config: &Config, client: reqwest::Client, encoder: Encoder) -> Self {
        Self {
            client,
            batch_url: config.batch_url.clone(),
            ai_url: config.ai_url.clone(),
            endpoint: config.endpoint,
            ai_route: AtomicBool::new(true),
            prefix: Prefix::new(config.api_key.expose()),
            encoder,
            api_key: config.api_key.clone(),
            gzip: config.gzip,
            on_error: config.on_error.clone(),
            unauthorized: Mutex::new(None),
        }
    }

    /// The route an event goes to now.
    fn lane_of(&self, event: &Event) -> Lane {
        match self.endpoint {
            Endpoint::Batch => Lane::Batch,
            Endpoint::AiBatch => Lane::Ai,
            Endpoint::Auto => {
                if self.ai_route.load(Ordering::Relaxed) && event_name(event).starts_with("$ai_") {
                    Lane::Ai
                } else {
                    Lane::Batch
                }
            }
        }
    }

    /// The payload's events again, for `/batch/` (its budget applied).
    fn to_batch_route(
        &self,
        payload: &PosthogPayload,
        counters: &Counters,
    ) -> ExportResult<PosthogPayload> {
        match payload.event_jsons() {
            Some(jsons) => {
                ExportResult::Replace(self.encoder.reencode(jsons, Lane::Batch, counters))
            }
            None => corrupt(),
        }
    }

    /// The payload in two halves, each re-encoded for its lane.
    fn split(&self, payload: &PosthogPayload, counters: &Counters) -> ExportResult<PosthogPayload> {
        let Some(mut jsons) = payload.event_jsons() else {
            return corrupt();
        };
        let second = jsons.split_off(jsons.len() / 2);
        let mut pieces = self.encoder.reencode(jsons, payload.lane, counters);
        pieces.extend(self.encoder.reencode(second, payload.lane, counters));
        ExportResult::Replace(pieces)
    }

    /// A lone event too large for the server: on the AI route, shrunk to `/batch/`'s budget and
    /// sent there when that makes it smaller; otherwise dropped.
    fn too_large(
        &self,
        payload: &PosthogPayload,
        status: Option<u16>,
        reason: String,
        counters: &Counters,
    ) -> ExportResult<PosthogPayload> {
        if payload.lane == Lane::Ai {
            let budget = self.encoder.encoding.limits(Lane::Batch).event_bytes;
            if let Some(jsons) = payload.event_jsons() {
                if jsons.iter().any(|json| cost(json) > budget) {
                    return ExportResult::Replace(self.encoder.reencode(
                        jsons,
                        Lane::Batch,
                        counters,
                    ));
                }
            }
        }
        ExportResult::Drop(Dropped {
            cause: if status == Some(400) {
                DropCause::Rejected
            } else {
                DropCause::TooLarge
            },
            events: payload_events(payload),
            status,
            reason,
        })
    }

    /// The server's error code or message, short and without the key.
    fn reason(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => json
                .get("code")
                .or_else(|| json.get("error"))
                .and_then(|value| value.as_str())
                .map(str::to_owned)
                .unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
        };
        // Redact before cutting: a key straddling the cut would otherwise survive in part.
        let text = self.api_key.redact(&text);
        text.chars().take(MAX_REASON_CHARS).collect()
    }
}

fn payload_events(payload: &PosthogPayload) -> usize {
    crate::sink::batch::Payload::events(payload)
}

fn corrupt() -> ExportResult<PosthogPayload> {
    ExportResult::Drop(Dropped {
        cause: DropCause::Rejected,
        events: 0,
        status: None,
        reason: "payload could not be decoded to split it".into(),
    })
}

impl Exporter for PosthogExporter {
    type Payload = PosthogPayload;

    fn encode(
        &self,
        events: impl Iterator<Item = Event>,
        counters: &Counters,
    ) -> Vec<PosthogPayload> {
        self.encoder
            .encode(events, |event| self.lane_of(event), counters)
    }

    async fn export(
        &self,
        payload: &PosthogPayload,
        attempt: u32,
        counters: &Counters,
    ) -> ExportResult<PosthogPayload> {
        let ai = payload.lane == Lane::Ai;
        if ai && self.endpoint == Endpoint::Auto && !self.ai_route.load(Ordering::Relaxed) {
            return self.to_batch_route(payload, counters);
        }
        let url = if ai { &self.ai_url } else { &self.batch_url };
        let body = payload.body(&self.prefix, SystemTime::now());
        let size = body.len();
        add(&counters.requests, 1);
        add(&counters.bytes_sent, size as u64);
        let mut request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if self.gzip {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            // Reading the body lets the connection go back to the pool.
            let text = response.bytes().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((status, retry_after, text))
        };
        let events = payload_events(payload);
        match exchange.await {
            Ok((status, retry_after, text)) => {
                let reason = || self.reason(&text);
                match status {
                    200..=299 => ExportResult::Delivered,
                    404 | 405 if ai && self.endpoint == Endpoint::Auto => {
                        if self.ai_route.swap(false, Ordering::Relaxed) {
                            tracing::warn!(
                                target: LOG_TARGET,
                                status,
                                "posthog has no AI route (/i/v0/ai/batch/) here; sending to /batch/ from now on"
                            );
                        }
                        self.to_batch_route(payload, counters)
                    }
                    401 | 403 => ExportResult::Drop(Dropped {
                        cause: DropCause::Unauthorized,
                        events,
                        status: Some(status),
                        reason: reason(),
                    }),
                    413 if events > 1 => self.split(payload, counters),
                    413 => self.too_large(payload, Some(413), reason(), counters),
                    400 if events > 1 => self.split(payload, counters),
                    408 | 429 | 500..=599 => ExportResult::Retry {
                        after: retry_after,
                        reason: format!("http status {status}"),
                    },
                    400 if ai => self.too_large(payload, Some(400), reason(), counters),
                    _ => ExportResult::Drop(Dropped {
                        cause: DropCause::Rejected,
                        events,
                        status: Some(status),
                        reason: reason(),
                    }),
                }
            }
            Err(err)
                if matches!(Failure::of(&err), Failure::Request | Failure::Other)
                    && size >= LARGE_UPLOAD =>
            {
                // Reset right after a large upload: the server most likely refused its size.
                if events > 1 {
                    self.split(payload, counters)
                } else if attempt >= 1 {
                    self.too_large(payload, None, network_reason(&err), counters)
                } else {
                    ExportResult::Retry {
                        after: None,
                        reason: network_reason(&err),
                    }
                }
            }
            Err(err) => ExportResult::Retry {
                after: None,
                reason: network_reason(&err),
            },
        }
    }

    fn dropped(&self, dropped: &Dropped) {
        let kind = match dropped.cause {
            DropCause::Rejected => DeliveryErrorKind::Rejected,
            DropCause::Unauthorized => {
                *self
                    .unauthorized
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some((dropped.status, dropped.reason.clone()));
                DeliveryErrorKind::Unauthorized
            }
            DropCause::TooLarge => DeliveryErrorKind::TooLarge,
            DropCause::BufferFull => DeliveryErrorKind::BufferFull,
            DropCause::Expired => DeliveryErrorKind::Expired,
            DropCause::Shutdown => DeliveryErrorKind::Shutdown,
        };
        tracing::debug!(
            target: LOG_TARGET,
            status = dropped.status.unwrap_or(0),
            events = dropped.events,
            "posthog sink dropped a batch: {kind:?}"
        );
        if let Some(callback) = &self.on_error {
            callback(&DeliveryError {
                kind,
                status: dropped.status,
                events: dropped.events,
                reason: dropped.reason.clone(),
            });
        }
    }

    fn spool_bytes(&self, payload: &PosthogPayload) -> Vec<u8> {
        payload.to_spool()
    }

    fn unspool(&self, bytes: &[u8]) -> Option<PosthogPayload> {
        PosthogPayload::from_spool(bytes)
    }
}

/// Builds the HTTP client: one connection pool for the sink's life.
pub(crate) fn client(config: &Config) -> crate::Result<reqwest::Client> {
    build_client(ClientSettings {
        timeout: Some(config.request_timeout),
        ..ClientSettings::new(config.request_timeout)
    })
    .map_err(|err| err.with_provider("posthog"))
}

fn network_reason(err: &reqwest::Error) -> String {
    match Failure::of(err) {
        Failure::Timeout => "request timed out",
        Failure::Connect => "connection failed",
        Failure::Request | Failure::Other => "network error",
    }
    .into()
}
