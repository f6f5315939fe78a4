//! Server-sent events to neutral [`StreamEvent`]s, shared by every provider.
//!
//! [`Framer`] splits the byte stream into events as the bytes arrive, following the WHATWG
//! event-stream rules: events split across reads, LF, CRLF and CR line ends, a leading BOM,
//! comments and keep-alives, `data` spread over several lines. A [`Decoder`] per provider turns
//! each event's data into zero or more [`StreamEvent`]s. Nothing is buffered beyond the line
//! being read, no allocation is made per event, and dropping the stream drops the HTTP body,
//! which aborts the request.
//!
//! The framing is written here rather than taken from `eventsource-stream`: that crate costs
//! about 2.5 µs per 350-byte event (a `String` per read, a character-by-character parser and a
//! copy of the rest of the buffer per line), more than the whole budget of 2 µs per chunk.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::error::ErrorScope;
use crate::types::{ChatStream, StreamEvent};
use crate::{Error, Result};

/// A line longer than this is not an event stream a model would send. The limit holds however
/// the line's bytes were split across reads.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The `data` of one event (its lines joined) may not exceed this either: an endless run of
/// `data:` lines with no blank line after them is refused, not held.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

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
    fn into_error(self) -> Error;
}

impl TransportError for reqwest::Error {
    fn into_error(self) -> Error {
        super::error::stream_error(self)
    }
}

impl TransportError for std::io::Error {
    fn into_error(self) -> Error {
        Error::stream("the connection broke").with_source(self)
    }
}

impl TransportError for Infallible {
    fn into_error(self) -> Error {
        match self {}
    }
}

/// The neutral events of the event stream `bytes`, read by `decoder`; every error it yields is
/// finished by `scope` (provider named, secrets scrubbed).
pub(crate) fn decode_stream<S, B, E, D>(bytes: S, decoder: D, scope: ErrorScope) -> ChatStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: TransportError + Send + 'static,
    D: Decoder + Send + 'static,
{
    ChatStream::new(SseStream::new(bytes, decoder, scope))
}

/// Splits bytes into server-sent events.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last line ended with CR, so an LF that starts the next read belongs to it.
    after_cr: bool,
    started: bool,
    /// The `event:` field of the event being read.
    kind: String,
    /// The `data:` lines of the event being read, each followed by LF.
    data: String,
    has_data: bool,
}

impl Framer {
    /// Reads `bytes`, calling `on_event(kind, data)` for each complete event, until the bytes
    /// run out or `on_event` says the answer is complete.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut impl FnMut(&str, &str) -> Result<Flow>,
    ) -> Result<Flow> {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.partial.len() + end > MAX_LINE_BYTES {
                return Err(line_too_long());
            }
            let flow = if self.partial.is_empty() {
                self.line(&bytes[..end], on_event)?
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..end]);
                let flow = self.line(&line, on_event);
                line.clear();
                self.partial = line;
                flow?
            };
            if bytes[end] == b'\r' {
                match bytes.get(end + 1) {
                    Some(b'\n') => bytes = &bytes[end + 2..],
                    Some(_) => bytes = &bytes[end + 1..],
                    None => {
                        self.after_cr = true;
                        bytes = &[];
                    }
                }
            } else {
                bytes = &bytes[end + 1..];
            }
            if flow == Flow::Done {
                return Ok(Flow::Done);
            }
        }
        if self.partial.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(line_too_long());
        }
        self.partial.extend_from_slice(bytes);
        Ok(Flow::Continue)
    }

    /// The body ended: a last line or event left without its line end is still read, since
    /// some servers end the body right after the final `data:` line.
    pub(crate) fn finish(
        &mut self,
        on_event: &mut impl FnMut(&str, &str) -> Result<Flow>,
    ) -> Result<Flow> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if self.line(&line, on_event)? == Flow::Done {
                return Ok(Flow::Done);
            }
        }
        self.line(b"", on_event)
    }

    fn line(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(&str, &str) -> Result<Flow>,
    ) -> Result<Flow> {
        let line = if self.started {
            line
        } else {
            // A byte-order mark may open the stream, and only the stream.
            self.started = true;
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        };
        if line.is_empty() {
            if !self.has_data {
                self.kind.clear();
                return Ok(Flow::Continue);
            }
            self.data.pop(); // the LF after the last data line
            let kind = if self.kind.is_empty() {
                "message"
            } else {
                self.kind.as_str()
            };
            let flow = on_event(kind, &self.data);
            self.kind.clear();
            self.data.clear();
            self.has_data = false;
            return flow;
        }
        if line[0] == b':' {
            return Ok(Flow::Continue); // a comment, e.g. a keep-alive
        }
        let line = std::str::from_utf8(line)
            .map_err(|err| Error::decode(format!("the event stream is not valid utf-8: {err}")))?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() >= MAX_EVENT_BYTES {
                    return Err(Error::decode("an event stream event exceeds 16 MiB"));
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => {
                self.kind.clear();
                self.kind.push_str(value);
            }
            // `id` and `retry` only matter to clients that reconnect, which this one never does.
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

fn line_too_long() -> Error {
    Error::decode("an event stream line exceeds 16 MiB")
}

pin_project! {
    /// The neutral event stream of one provider answer.
    pub(crate) struct SseStream<S, D> {
        #[pin]
        bytes: S,
        framer: Framer,
        decoder: D,
        scope: ErrorScope,
        pending: VecDeque<StreamEvent>,
        failure: Option<Error>,
        finished: bool,
    }
}

impl<S, D> SseStream<S, D> {
    pub(crate) fn new(bytes: S, decoder: D, scope: ErrorScope) -> Self {
        Self {
            bytes,
            framer: Framer::default(),
            decoder,
            scope,
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
            let next = match this.bytes.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            let decoder = &mut *this.decoder;
            let pending = &mut *this.pending;
            let mut on_event = |kind: &str, data: &str| decoder.decode(kind, data, pending);
            let outcome = match next {
                Some(Ok(bytes)) => this.framer.feed(bytes.as_ref(), &mut on_event),
                Some(Err(error)) => Err(error.into_error()),
                None => match this.framer.finish(&mut on_event) {
                    Ok(Flow::Continue) => this.decoder.end_without_marker().map(|()| Flow::Done),
                    other => other,
                },
            };
            match outcome {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => *this.finished = true,
                Err(error) => {
                    *this.finished = true;
                    *this.failure = Some(this.scope.finish(error));
                }
            }
        }
    }
}

/// Runs `decoder` over the `data` of events (each of kind `kind`) until one fails: what arrived
/// and the last outcome. The decoders' unit tests share it.
#[cfg(test)]
pub(crate) fn decode_all(
    mut decoder: impl Decoder,
    kind: &str,
    datas: &[&str],
) -> (Vec<StreamEvent>, Result<Flow>) {
    let mut out = VecDeque::new();
    let mut last = Ok(Flow::Continue);
    for data in datas {
        last = decoder.decode(kind, data, &mut out);
        if last.is_err() {
            break;
        }
    }
    (out.into_iter().collect(), last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `body` fed in pieces of `size` bytes, as `(kind, data)`.
    fn frame(body: &[u8], size: usize) -> Vec<(String, String)> {
        let mut framer = Framer::default();
        let mut events = Vec::new();
        let mut on_event = |kind: &str, data: &str| {
            events.push((kind.to_owned(), data.to_owned()));
            Ok(if data == "[DONE]" {
                Flow::Done
            } else {
                Flow::Continue
            })
        };
        for piece in body.chunks(size) {
            if framer.feed(piece, &mut on_event).unwrap() == Flow::Done {
                return events;
            }
            framer.feed(b"", &mut on_event).unwrap();
        }
        framer.finish(&mut on_event).unwrap();
        events
    }

    #[test]
    fn every_split_and_line_end_gives_the_same_events() {
        let body = "\u{feff}event: open\r\ndata: opened\r\n\r\n: hello\r\n\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
                    data:first\rdata: second\r\r: keep-alive\n\nid: 7\nretry: 10\ndata\n\n\
                    event: ping\n\ndata: é ü\n\ndata: [DONE]\n\ndata: after\n\n";
        let expected = vec![
            ("open".to_owned(), "opened".to_owned()),
            ("message_start".to_owned(), "{\"a\":1}".to_owned()),
            ("message".to_owned(), "first\nsecond".to_owned()),
            ("message".to_owned(), String::new()),
            ("message".to_owned(), "é ü".to_owned()),
            ("message".to_owned(), "[DONE]".to_owned()),
        ];
        for size in 1..=body.len() {
            assert_eq!(
                frame(body.as_bytes(), size),
                expected,
                "pieces of {size} bytes"
            );
        }
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_still_read() {
        assert_eq!(
            frame(b"data: {}\n\ndata: [DONE]", 4),
            vec![
                ("message".to_owned(), "{}".to_owned()),
                ("message".to_owned(), "[DONE]".to_owned())
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_a_decode_error() {
        let mut framer = Framer::default();
        let err = framer
            .feed(b"data: \xff\xfe\n\n", &mut |_: &str, _: &str| {
                Ok(Flow::Continue)
            })
            .unwrap_err();
        assert!(err.is_decode());
    }

    /// What feeding `body` in pieces of `size` bytes ends with.
    fn feed_all(body: &[u8], size: usize) -> Result<Flow> {
        let mut framer = Framer::default();
        let mut on_event = |_: &str, _: &str| Ok(Flow::Continue);
        for piece in body.chunks(size) {
            framer.feed(piece, &mut on_event)?;
        }
        framer.finish(&mut on_event)
    }

    #[test]
    fn a_line_over_the_limit_fails_however_the_reads_split() {
        let mut body = b"data: ".to_vec();
        body.resize(MAX_LINE_BYTES + 10, b'a');
        body.extend_from_slice(b"\n\n");
        for size in [body.len(), MAX_LINE_BYTES / 2, 64 * 1024, 4096 + 7] {
            let err = feed_all(&body, size).unwrap_err();
            assert!(err.is_decode(), "pieces of {size}");
            assert_eq!(err.message(), "an event stream line exceeds 16 MiB");
        }
        // Just under the limit, in one read or many, is a line like any other.
        let mut body = b"data: ".to_vec();
        body.resize(MAX_LINE_BYTES - 10, b'a');
        body.extend_from_slice(b"\n");
        for size in [body.len(), 64 * 1024] {
            assert!(feed_all(&body, size).is_ok(), "pieces of {size}");
        }
    }

    #[test]
    fn an_event_without_its_blank_line_is_bounded() {
        // 4,097 data lines of 4 KiB and no blank line: over 16 MiB in one event.
        let line = format!("data: {}\n", "b".repeat(4096));
        let body = line.repeat(4097);
        for size in [body.len(), 64 * 1024, 1000] {
            let err = feed_all(body.as_bytes(), size).unwrap_err();
            assert!(err.is_decode(), "pieces of {size}");
            assert_eq!(err.message(), "an event stream event exceeds 16 MiB");
        }
        // The same lines as separate events are fine.
        let body = format!("data: {}\n\n", "b".repeat(4096)).repeat(4097);
        assert!(feed_all(body.as_bytes(), 64 * 1024).is_ok());
    }

    /// Fails on every event, quoting its data.
    struct Quote;

    impl Decoder for Quote {
        fn decode(&mut self, _: &str, data: &str, _: &mut VecDeque<StreamEvent>) -> Result<Flow> {
            Err(Error::stream(format!("server said {data}")))
        }

        fn end_without_marker(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_error_leaves_through_the_scope() {
        use crate::util::secret::Secret;

        let scope = || ErrorScope::new("p", [Secret::new("sk-secret-1")]);
        let bytes = futures_util::stream::iter([Ok::<_, Infallible>("data: sk-secret-1\n\n")]);
        let err = decode_stream(bytes, Quote, scope())
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), "p: stream failed: server said [redacted]");

        let broken = std::io::Error::other("reset by sk-secret-1");
        let bytes = futures_util::stream::iter([Err::<&[u8], _>(broken)]);
        let err = decode_stream(bytes, Quote, scope())
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.is_stream());
        assert_eq!(err.message(), "the connection broke");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(cause, "reset by [redacted]");
    }
}
