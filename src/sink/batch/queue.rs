//! The raw-event queue: bounded in events and in (estimated) bytes, stored in blocks that are
//! reused, so its memory follows the backlog instead of its largest size so far.
//!
//! A block holds one batch's worth of events, so it is handed to an encoder as it is, without
//! copying an event. A capture locks the queue, pushes into the last block and unlocks; it
//! allocates only when the pool of empty blocks is empty. The worker takes whole blocks
//! (pointer moves under the lock); the encoders give the emptied blocks back to the pool, which
//! is kept stocked with blocks whose memory is already touched.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::Notify;

use super::QueueFullPolicy;
use crate::event::Event;
use crate::types::{ContentPart, ImageSource, Message};

/// Events per block at most, whatever the batch size.
pub(crate) const MAX_BLOCK: usize = 1024;
/// Bytes of empty blocks kept for reuse at most; more are freed.
const MAX_POOL_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of empty, touched blocks kept ready for captures at least; after a burst, as many
/// blocks as the last drain took (up to [`MAX_POOL_BYTES`]), so the next burst finds them.
const READY_BYTES: usize = 768 * 1024;

/// A queued event and its weight in bytes.
pub(crate) struct Slot {
    pub(crate) event: Event,
    weight: u32,
}

/// Blocks of slots, oldest first.
pub(crate) type Blocks = VecDeque<VecDeque<Slot>>;

struct Inner {
    blocks: Blocks,
    /// The weight of each block, beside it.
    weights: VecDeque<usize>,
    len: usize,
    bytes: usize,
    pool: Vec<VecDeque<Slot>>,
}

/// What `push` did.
pub(crate) enum Pushed {
    /// Queued; the new length.
    Queued(usize),
    /// Queued after dropping the oldest event; the new length.
    Evicted(usize),
    /// Not queued: full.
    Refused,
}

/// The queue the handles push into and the worker drains.
pub(crate) struct EventQueue {
    inner: Mutex<Inner>,
    pub(crate) notify: Notify,
    pub(crate) closed: AtomicBool,
    /// The queue length at which a capture wakes the worker; the worker sets it.
    pub(crate) wake_at: AtomicUsize,
    max_len: usize,
    max_bytes: usize,
    policy: QueueFullPolicy,
    /// Events per block.
    block: usize,
    /// Blocks kept ready at least, and pooled at most.
    ready: usize,
    max_pool: usize,
}

impl EventQueue {
    /// A queue in blocks of `block` events (the batch size), at most [`MAX_BLOCK`] and never
    /// more than the queue holds, so that a block can always fill.
    pub(crate) fn new(
        max_len: usize,
        max_bytes: usize,
        policy: QueueFullPolicy,
        block: usize,
    ) -> Self {
        let block = block.min(max_len).clamp(1, MAX_BLOCK);
        let block_bytes = block * std::mem::size_of::<Slot>();
        let max_pool = (MAX_POOL_BYTES / block_bytes).max(2);
        Self {
            inner: Mutex::new(Inner {
                blocks: VecDeque::new(),
                weights: VecDeque::new(),
                len: 0,
                bytes: 0,
                pool: Vec::new(),
            }),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            wake_at: AtomicUsize::new(1),
            max_len,
            max_bytes,
            policy,
            block,
            ready: (READY_BYTES / block_bytes).clamp(1, max_pool),
            max_pool,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `event`, or gives it back when the queue is full and the policy keeps the old.
    pub(crate) fn push(&self, event: Event) -> (Pushed, Option<Event>) {
        let weight = weight(&event).min(u32::MAX as usize) as u32;
        let mut inner = self.lock();
        let full = |inner: &Inner| {
            inner.len >= self.max_len
                || (inner.len > 0 && inner.bytes + weight as usize > self.max_bytes)
        };
        let mut evicted = None;
        if full(&inner) {
            if self.policy == QueueFullPolicy::DropNewest {
                return (Pushed::Refused, Some(event));
            }
            while full(&inner) {
                let Some(old) = inner.pop_front(self.max_pool) else {
                    break;
                };
                evicted = Some(old);
            }
        }
        inner.push_back(Slot { event, weight }, self);
        let len = inner.len;
        drop(inner);
        // The evicted event is freed after the lock is released.
        match evicted {
            Some(old) => {
                drop(old);
                (Pushed::Evicted(len), None)
            }
            None => (Pushed::Queued(len), None),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether a full block waits.
    pub(crate) fn has_full_block(&self) -> bool {
        self.lock()
            .blocks
            .front()
            .is_some_and(|block| block.len() >= self.block)
    }

    /// Takes the oldest block; only when it is full if `full_only`.
    pub(crate) fn take_front(&self, full_only: bool) -> Option<VecDeque<Slot>> {
        let mut inner = self.lock();
        if full_only && inner.blocks.front()?.len() < self.block {
            return None;
        }
        let block = inner.blocks.pop_front()?;
        let weight = inner.weights.pop_front().unwrap_or(0);
        inner.len -= block.len();
        inner.bytes -= weight;
        Some(block)
    }

    /// Takes every queued block.
    pub(crate) fn take_all(&self) -> Blocks {
        let mut inner = self.lock();
        inner.len = 0;
        inner.bytes = 0;
        inner.weights.clear();
        std::mem::take(&mut inner.blocks)
    }

    /// Gives emptied blocks back and keeps `ready` blocks (at least the queue's minimum) ready,
    /// touched outside the lock.
    pub(crate) fn recycle(&self, mut emptied: Vec<VecDeque<Slot>>, ready: usize) {
        let ready = ready.clamp(self.ready, self.max_pool);
        let missing = ready.saturating_sub(self.lock().pool.len() + emptied.len());
        for _ in 0..missing {
            emptied.push(touched_block(self.block));
        }
        if emptied.is_empty() {
            return;
        }
        let mut inner = self.lock();
        while inner.pool.len() < self.max_pool {
            match emptied.pop() {
                Some(block) => inner.pool.push(block),
                None => break,
            }
        }
        drop(inner);
        // Blocks beyond the pool are freed here, outside the lock.
        drop(emptied);
    }
}

impl Inner {
    fn push_back(&mut self, slot: Slot, queue: &EventQueue) {
        self.len += 1;
        self.bytes += slot.weight as usize;
        if let (Some(last), Some(weight)) = (self.blocks.back_mut(), self.weights.back_mut()) {
            if last.len() < queue.block {
                *weight += slot.weight as usize;
                last.push_back(slot);
                return;
            }
        }
        let mut block = self
            .pool
            .pop()
            .unwrap_or_else(|| VecDeque::with_capacity(queue.block));
        self.weights.push_back(slot.weight as usize);
        block.push_back(slot);
        self.blocks.push_back(block);
    }

    fn pop_front(&mut self, max_pool: usize) -> Option<Event> {
        let first = self.blocks.front_mut()?;
        let slot = first.pop_front()?;
        if let Some(weight) = self.weights.front_mut() {
            *weight -= slot.weight as usize;
        }
        if first.is_empty() {
            self.weights.pop_front();
            if let Some(block) = self.blocks.pop_front() {
                if self.pool.len() < max_pool {
                    self.pool.push(block);
                }
            }
        }
        self.len -= 1;
        self.bytes -= slot.weight as usize;
        Some(slot.event)
    }
}

/// An empty block whose memory has been written, so captures into it do not page-fault.
fn touched_block(block: usize) -> VecDeque<Slot> {
    // Hidden from the optimizer, which would otherwise turn allocating and zeroing into one
    // `calloc` of fresh pages that nothing touches (so captures would fault after all).
    let mut slots: Vec<Slot> = std::hint::black_box(Vec::with_capacity(block));
    for slot in slots.spare_capacity_mut() {
        *slot = std::mem::MaybeUninit::zeroed();
    }
    VecDeque::from(slots)
}

/// What an event costs in memory, roughly: its inline size and the text and JSON it holds.
pub(crate) fn weight(event: &Event) -> usize {
    let envelope = event.envelope();
    let mut bytes = std::mem::size_of::<Event>() + 64;
    for id in [
        &envelope.distinct_id,
        &envelope.trace_id,
        &envelope.session_id,
        &envelope.span_id,
        &envelope.parent_id,
        &envelope.span_name,
    ]
    .into_iter()
    .flatten()
    {
        bytes += id.len() + 16;
    }
    if !envelope.properties.is_empty() {
        bytes += envelope.properties.iter().map(entry_weight).sum::<usize>();
    }
    if !envelope.groups.is_empty() {
        bytes += envelope.groups.iter().map(entry_weight).sum::<usize>();
    }
    match event {
        Event::Generation(generation) => {
            bytes += generation.model.len() + generation.provider.len() + generation.base_url.len();
            bytes += generation.input.as_deref().map_or(0, messages_weight);
            bytes += generation.output.as_deref().map_or(0, parts_weight);
            for tool in &generation.tools {
                bytes += 64 + tool.name.len() + tool.description.as_ref().map_or(0, String::len);
                bytes += value_weight(&tool.parameters);
            }
            if !generation.provider_metadata.is_empty() {
                bytes += generation
                    .provider_metadata
                    .iter()
                    .map(entry_weight)
                    .sum::<usize>();
            }
            bytes += generation.stop_reason.as_ref().map_or(0, String::len);
            bytes += generation.completion_id.as_ref().map_or(0, String::len);
            bytes += generation.error.as_ref().map_or(0, |_| 256);
        }
        Event::Embedding(embedding) => {
            bytes += embedding.model.len() + embedding.provider.len() + embedding.base_url.len();
            bytes += embedding
                .input
                .iter()
                .flatten()
                .map(|text| text.len() + 24)
                .sum::<usize>();
        }
        Event::Span(span) => {
            bytes += span.input_state.as_ref().map_or(0, value_weight);
            bytes += span.output_state.as_ref().map_or(0, value_weight);
        }
        Event::Feedback(feedback) => bytes += feedback.text.as_ref().map_or(0, String::len),
        Event::Metric(metric) => bytes += metric.name.len() + value_weight(&metric.value),
        Event::FlagExposure(exposure) => bytes += exposure.key.len() + 128,
        Event::Exception(exception) => {
            bytes += 512 + exception.model.as_ref().map_or(0, String::len);
        }
        Event::Alert(alert) => {
            bytes += 512 + alert.rule.len() + alert.key.len() + alert.metric.len();
            bytes += alert
                .sample_trace_ids
                .iter()
                .map(|id| id.len() + 8)
                .sum::<usize>();
        }
    }
    bytes
}

fn messages_weight(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|message| {
            64 + parts_weight(&message.content) + message.name.as_ref().map_or(0, String::len)
        })
        .sum()
}

fn parts_weight(parts: &[ContentPart]) -> usize {
    parts
        .iter()
        .map(|part| {
            48 + match part {
                ContentPart::Text { text } => text.len(),
                ContentPart::Image { source } => match source {
                    ImageSource::Url { url } => url.len(),
                    ImageSource::Base64 { media_type, data } => media_type.len() + data.len(),
                },
                ContentPart::ToolCall(call) => {
                    call.id.len() + call.name.len() + call.arguments.len()
                }
                ContentPart::ToolResult {
                    tool_call_id,
                    content,
                    ..
                } => tool_call_id.len() + content.len(),
            }
        })
        .sum()
}

fn entry_weight((key, value): (&String, &Value)) -> usize {
    key.len() + 32 + value_weight(value)
}

/// The bytes a JSON value holds, walked without recursion.
fn value_weight(value: &Value) -> usize {
    let mut bytes = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        bytes += 32;
        match value {
            Value::String(text) => bytes += text.len(),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    bytes += key.len() + 32;
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Generation;

    fn event() -> Event {
        Event::from(Generation::new("gpt-4o-mini", "openai"))
    }

    #[test]
    fn bounded_in_count_and_bytes_with_both_policies() {
        let queue = EventQueue::new(3, usize::MAX, QueueFullPolicy::DropNewest, 2);
        for _ in 0..3 {
            assert!(matches!(queue.push(event()).0, Pushed::Queued(_)));
        }
        assert!(matches!(queue.push(event()).0, Pushed::Refused));
        let one = weight(&event());
        let queue = EventQueue::new(100, 2 * one, QueueFullPolicy::DropOldest, 2);
        let events: Vec<Event> = (0..3).map(|_| event()).collect();
        let last = events[2].envelope().uuid;
        for event in events {
            queue.push(event);
        }
        assert_eq!(queue.len(), 2);
        let blocks = queue.take_all();
        let kept: Vec<_> = blocks
            .iter()
            .flatten()
            .map(|slot| slot.event.envelope().uuid)
            .collect();
        assert_eq!(kept.last(), Some(&last));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn one_event_larger_than_the_byte_bound_still_fits_an_empty_queue() {
        let queue = EventQueue::new(10, 1, QueueFullPolicy::DropNewest, 100);
        assert!(matches!(queue.push(event()).0, Pushed::Queued(1)));
        assert!(matches!(queue.push(event()).0, Pushed::Refused));
    }

    #[test]
    fn blocks_are_reused() {
        let queue = EventQueue::new(10_000, usize::MAX, QueueFullPolicy::DropNewest, 100);
        for _ in 0..301 {
            queue.push(event());
        }
        assert_eq!(queue.take_front(true).map(|block| block.len()), Some(100));
        let blocks = queue.take_all();
        assert_eq!(blocks.len(), 3);
        assert!(queue.take_front(false).is_none());
        let emptied: Vec<_> = blocks
            .into_iter()
            .map(|mut block| {
                block.clear();
                block
            })
            .collect();
        queue.recycle(emptied, 0);
        assert_eq!(queue.lock().pool.len(), queue.ready);
        queue.recycle(Vec::new(), queue.ready + 6);
        assert_eq!(queue.lock().pool.len(), queue.ready + 6);
    }

    #[test]
    fn weight_follows_content() {
        let small = weight(&event());
        let mut generation = Generation::new("gpt-4o-mini", "openai");
        generation.input = Some(vec![Message::user("x".repeat(10_000))]);
        assert!(weight(&Event::from(generation)) >= small + 10_000);
    }
}
