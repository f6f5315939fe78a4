use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::CallInProgress;
use crate::types::{ChatStream, StreamEvent};
use crate::Result;

pin_project! {
    /// A stream of events, observed into a [`CallInProgress`]: it passes every item through
    /// unchanged and ends the call exactly once, when the stream ends, fails, or is dropped
    /// before its end (then as `cancelled`).
    ///
    /// [`TracedModel`](crate::TracedModel) wraps provider streams in it; wrap your own stream
    /// the same way:
    ///
    /// ```
    /// use traced_llm::record::{CallInfo, Recorder, TracedStream};
    /// use traced_llm::sink::InMemorySink;
    /// use traced_llm::{ChatStream, StreamEvent};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let events = InMemorySink::new();
    /// let recorder = Recorder::new(events.clone());
    /// let call = recorder.start(CallInfo::new("my-model", "my-provider").stream(true));
    /// let answer = ChatStream::from_events(vec![StreamEvent::text("Hi!")]);
    /// let traced = TracedStream::new(answer, call);
    /// assert_eq!(ChatStream::new(traced).collect_response().await?.text(), "Hi!");
    /// assert_eq!(events.generations()[0].output_text(), "Hi!");
    /// # Ok::<(), traced_llm::Error>(())
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct TracedStream<S = ChatStream> {
        #[pin]
        inner: S,
        call: Option<CallInProgress>,
    }
}

impl<S> TracedStream<S> {
    /// Observes `inner` into `call`; the call counts as answered with a stream from now on.
    pub fn new(inner: S, mut call: CallInProgress) -> Self {
        call.streaming();
        Self {
            inner,
            call: Some(call),
        }
    }

    /// The stream being observed.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream<Item = Result<StreamEvent>>> Stream for TracedStream<S> {
    type Item = Result<StreamEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                if let Some(call) = this.call {
                    call.observe(event);
                }
            }
            Some(Err(error)) => {
                if let Some(call) = this.call.take() {
                    call.fail(error);
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish();
                }
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S: Stream<Item = Result<StreamEvent>>> FusedStream for TracedStream<S> {
    fn is_terminated(&self) -> bool {
        self.call.is_none()
    }
}

impl<S> fmt::Debug for TracedStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedStream")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}
