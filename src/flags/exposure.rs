//! Exposure reporting: one event per (distinct id, flag, value) per process, in bounded memory.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::{Flag, FlagValue};
use crate::sink::Sink;

/// How many (distinct id, flag, value) triples [`Exposures`] remembers by default: about
/// 1.5 MB. Past that the oldest are forgotten, and a person seen again long after reports once
/// more, which experiments count once anyway.
pub const DEFAULT_MAX_EXPOSURES: usize = 50_000;

/// Reports that a person saw a flag's value: what experiments count as exposure.
///
/// Each (distinct id, flag, value) is reported once per process, as PostHog's SDKs do. The
/// triples seen are remembered as 64-bit hashes, at most [`DEFAULT_MAX_EXPOSURES`] of them
/// (see [`Exposures::with_capacity`]), oldest forgotten first. Cheap to clone: clones share
/// the memory and the sink.
#[derive(Clone)]
pub struct Exposures {
    inner: Arc<Shared>,
}

struct Shared {
    sink: Arc<dyn Sink>,
    seen: Mutex<Seen>,
}

impl Exposures {
    /// Reports to `sink`, remembering [`DEFAULT_MAX_EXPOSURES`] triples.
    pub fn new(sink: impl Sink + 'static) -> Self {
        Self::with_capacity(sink, DEFAULT_MAX_EXPOSURES)
    }

    /// Reports to `sink`, remembering at most `capacity` triples (at least one).
    pub fn with_capacity(sink: impl Sink + 'static, capacity: usize) -> Self {
        Self::from_arc(Arc::new(sink), capacity)
    }

    /// Reports to a shared sink.
    pub fn from_arc(sink: Arc<dyn Sink>, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Shared {
                sink,
                seen: Mutex::new(Seen::new(capacity.max(1))),
            }),
        }
    }

    /// Reports that `distinct_id` saw `flag` (named `key`), unless that was already reported.
    /// Returns whether it reported.
    pub fn report(
        &self,
        distinct_id: &str,
        groups: &Map<String, Value>,
        key: &str,
        flag: &Flag,
    ) -> bool {
        let fingerprint = fingerprint(distinct_id, key, &flag.value);
        let first = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(fingerprint);
        if first {
            super::emit_exposure(&*self.inner.sink, distinct_id, groups, key, flag);
        }
        first
    }

    /// How many triples are remembered now.
    pub fn remembered(&self) -> usize {
        self.inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .order
            .len()
    }
}

impl fmt::Debug for Exposures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f.debug_struct("Exposures")
            .field("sink", &self.inner.sink)
            .field("remembered", &seen.order.len())
            .field("capacity", &seen.capacity)
            .finish()
    }
}

/// The triple as a 64-bit hash; fields are length-prefixed so no two triples run together.
fn fingerprint(distinct_id: &str, key: &str, value: &FlagValue) -> u64 {
    let mut hasher = DefaultHasher::new();
    distinct_id.hash(&mut hasher);
    key.hash(&mut hasher);
    value.hash(&mut hasher);
    hasher.finish()
}

/// A set of at most `capacity` hashes that forgets the oldest first.
struct Seen {
    capacity: usize,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Seen {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Adds `fingerprint`; `false` when it was already there.
    fn insert(&mut self, fingerprint: u64) -> bool {
        if !self.set.insert(fingerprint) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.order.push_back(fingerprint);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_forgets_the_oldest_past_its_capacity() {
        let mut seen = Seen::new(2);
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        assert!(seen.insert(2));
        assert!(seen.insert(3));
        assert_eq!(seen.order.len(), 2);
        assert!(seen.insert(1), "1 was forgotten");
        assert!(!seen.insert(3));
    }

    #[test]
    fn fingerprints_tell_triples_apart() {
        let on = FlagValue::Bool(true);
        assert_ne!(fingerprint("ab", "c", &on), fingerprint("a", "bc", &on));
        assert_ne!(
            fingerprint("a", "k", &FlagValue::variant("x")),
            fingerprint("a", "k", &FlagValue::variant("y"))
        );
        assert_eq!(fingerprint("a", "k", &on), fingerprint("a", "k", &on));
    }
}
