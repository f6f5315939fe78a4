//! A small cache with a time to live and a bound on its entries, for the flag and prompt
//! clients. Expired entries stay until they are replaced or pushed out, so a caller can still
//! serve one when the server fails.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries by key, each with the time it was stored; at most `capacity`, oldest out first.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    state: Mutex<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    entries: HashMap<K, (Instant, V)>,
    /// Keys in insertion order; a key may appear again after it was replaced.
    order: VecDeque<K>,
}

/// A cached value and whether it is younger than the time to live.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cached<V> {
    pub(crate) value: V,
    pub(crate) fresh: bool,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry for `key`, fresh or not.
    pub(crate) fn get(&self, key: &K) -> Option<Cached<V>> {
        let state = self.lock();
        let (stored, value) = state.entries.get(key)?;
        Some(Cached {
            value: value.clone(),
            fresh: !self.ttl.is_zero() && stored.elapsed() < self.ttl,
        })
    }

    /// Stores `value` under `key`, pushing out the oldest entries past the capacity.
    pub(crate) fn insert(&self, key: K, value: V) {
        let mut state = self.lock();
        let replaced = state
            .entries
            .insert(key.clone(), (Instant::now(), value))
            .is_some();
        if replaced {
            // Move the key to the back, so the order is by time stored.
            if let Some(at) = state.order.iter().position(|old| *old == key) {
                state.order.remove(at);
            }
        }
        state.order.push_back(key);
        while state.entries.len() > self.capacity {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    /// Forgets every entry `keep` refuses.
    #[cfg_attr(not(feature = "prompts"), allow(dead_code))]
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        let mut state = self.lock();
        state.entries.retain(|key, _| keep(key));
        let State { entries, order } = &mut *state;
        order.retain(|key| entries.contains_key(key));
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_but_stay_until_pushed_out() {
        let cache = TtlCache::new(Duration::from_millis(500), 2);
        cache.insert("a", 1);
        assert_eq!(
            cache.get(&"a"),
            Some(Cached {
                value: 1,
                fresh: true
            })
        );
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            cache.get(&"a"),
            Some(Cached {
                value: 1,
                fresh: false
            })
        );
        cache.insert("b", 2);
        cache.insert("a", 3);
        cache.insert("c", 4);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&"b"), None, "b was the oldest");
        assert_eq!(cache.get(&"a").map(|c| c.value), Some(3));
        cache.retain(|key| *key == "x");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_zero_ttl_caches_nothing_fresh() {
        let cache = TtlCache::new(Duration::ZERO, 4);
        cache.insert(1, "x");
        assert!(!cache.get(&1).unwrap().fresh);
    }
}
