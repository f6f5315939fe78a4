use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::record::{CallRecord, StreamAccumulator, StreamEnding};
use super::shared::Shared;
use crate::types::{ChatStream, StreamEvent};
use crate::Result;

pin_project! {
    /// A provider's stream, observed: it passes every item through unchanged and sends exactly
    /// one event when the stream ends, fails, or is dropped before its end.
    #[must_use = "streams do nothing unless polled"]
    pub struct TracedStream {
        #[pin]
        inner: ChatStream,
        call: Option<(CallRecord, StreamAccumulator)>,
        shared: Arc<Shared>,
    }

    impl PinnedDrop for TracedStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((record, accumulated)) = this.call.take() {
                finish(this.shared, record, accumulated, StreamEnding::Cancelled);
            }
        }
    }
}

impl TracedStream {
    pub(crate) fn new(inner: ChatStream, record: CallRecord, shared: Arc<Shared>) -> Self {
        let accumulator = StreamAccumulator::new(!record.is_private());
        Self {
            inner,
            call: Some((record, accumulator)),
            shared,
        }
    }
}

impl Stream for TracedStream {
    type Item = Result<StreamEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(event)) => {
                if let Some((_, accumulated)) = this.call {
                    accumulated.observe(event);
                }
            }
            Some(Err(error)) => {
                if let Some((record, accumulated)) = this.call.take() {
                    finish(
                        this.shared,
                        record,
                        accumulated,
                        StreamEnding::Failed(error),
                    );
                }
            }
            None => {
                if let Some((record, accumulated)) = this.call.take() {
                    finish(this.shared, record, accumulated, StreamEnding::Completed);
                }
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl FusedStream for TracedStream {
    fn is_terminated(&self) -> bool {
        self.call.is_none()
    }
}

impl std::fmt::Debug for TracedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedStream")
            .field("finished", &self.call.is_none())
            .field("tracing", &self.shared)
            .finish_non_exhaustive()
    }
}

fn finish(
    shared: &Shared,
    record: CallRecord,
    accumulated: StreamAccumulator,
    ending: StreamEnding<'_>,
) {
    let price = record.price().copied();
    let generation = record.finish_stream(accumulated, ending);
    shared.emit(generation.into(), price.as_ref());
}
