//! Server-sent events to neutral [`StreamEvent`]s, shared by both providers.
//!
//! `eventsource-stream` splits the byte stream into events as the bytes arrive (events split
//! across reads, CRLF line ends, comments and keep-alives are its business); a [`Decoder`] per
//! provider turns each event's data into zero or more [`StreamEvent`]s. Nothing is buffered
//! beyond the event being parsed, and dropping the stream drops the HTTP body, which aborts the
//! request.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use eventsource_stream::{EventStream, EventStreamError};
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::types::StreamEvent;
use crate::{Error, Result};

/// Whether the provider said its answer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// More events may follow.
    Continue,
    /// The answer is complete (`[DONE]`, `message_stop`); nothing after it is read.
    Done,
}

/// One provider's reading of its event stream.
pub(crate) trait Decoder {
    /// Reads one event (`kind` is the SSE `event:` field, `message` when absent) and pushes
    /// what it means onto `out`.
    fn decode(&mut self, kind: &str, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow>;

    /// The body ended without the provider's end marker; `Ok` when the answer looks complete
    /// anyway (some compatible servers omit the marker).
    fn end_without_marker(&mut self) -> Result<()>;
}

/// A transport error of the byte stream under the events.
pub(crate) trait TransportError {
    fn into_error(self, provider: &str) -> Error;
}

impl TransportError for reqwest::Error {
    fn into_error(self, provider: &str) -> Error {
        super::http::stream_transport_error(provider, self)
    }
}

impl TransportError for std::io::Error {
    fn into_error(self, provider: &str) -> Error {
        Error::stream(format!("the connection broke: {self}"))
            .with_source(self)
            .with_provider(provider)
    }
}

impl TransportError for Infallible {
    fn into_error(self, _provider: &str) -> Error {
        match self {}
    }
}

pin_project! {
    /// The neutral event stream of one provider answer.
    pub(crate) struct SseStream<S, D> {
        #[pin]
        events: EventStream<S>,
        decoder: D,
        provider: String,
        pending: VecDeque<StreamEvent>,
        failure: Option<Error>,
        finished: bool,
    }
}

impl<S, D> SseStream<S, D> {
    pub(crate) fn new(bytes: S, decoder: D, provider: impl Into<String>) -> Self {
        Self {
            events: EventStream::new(bytes),
            decoder,
            provider: provider.into(),
            pending: VecDeque::new(),
            failure: None,
            finished: false,
        }
    }
}

impl<S, B, E, D> Stream for SseStream<S, D>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: TransportError,
    D: Decoder,
{
    type Item = Result<StreamEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(error) = this.failure.take() {
                return Poll::Ready(Some(Err(error)));
            }
            if *this.finished {
                return Poll::Ready(None);
            }
            let next = match this.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            match next {
                Some(Ok(event)) => {
                    match this.decoder.decode(&event.event, &event.data, this.pending) {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Done) => *this.finished = true,
                        Err(error) => {
                            *this.finished = true;
                            *this.failure = Some(error.with_provider(this.provider.as_str()));
                        }
                    }
                }
                Some(Err(error)) => {
                    *this.finished = true;
                    *this.failure = Some(match error {
                        EventStreamError::Transport(error) => error.into_error(this.provider),
                        EventStreamError::Utf8(error) => {
                            Error::decode(format!("the event stream is not valid utf-8: {error}"))
                                .with_provider(this.provider.as_str())
                        }
                        EventStreamError::Parser(error) => {
                            Error::decode(format!("malformed event stream: {error:?}"))
                                .with_provider(this.provider.as_str())
                        }
                    });
                }
                None => {
                    *this.finished = true;
                    if let Err(error) = this.decoder.end_without_marker() {
                        *this.failure = Some(error.with_provider(this.provider.as_str()));
                    }
                }
            }
        }
    }
}
