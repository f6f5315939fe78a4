//! The keys of one dimension (models, providers or distinct ids): a bounded table per shard,
//! least recently seen evicted, with every key's windows in flat arrays.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use uuid::Uuid;

use super::window::{Bucket, Geometry, Hist, Period, Totals, Windows};

const NIL: u32 = u32::MAX;
/// Fewer keys than this per shard would make eviction far from least-recently-seen.
const MIN_KEYS_PER_SHARD: usize = 64;
/// Recent trace ids kept per shard, to name samples in an alert.
const RECENT_TRACES: usize = 32;

/// One tracked key.
#[derive(Debug)]
pub(super) struct Slot<E> {
    pub(super) key: Arc<str>,
    /// The key's SipHash, which both the shard and the table's map are picked by.
    hash: u64,
    /// Bumped each time the slot is given to a new key, so stale trace samples are told apart.
    generation: u32,
    prev: u32,
    next: u32,
    head_epoch: u64,
    hist_epoch: u64,
    first_epoch: u64,
    /// The bucket epoch the key was last moved to the front of the eviction order in.
    seen_epoch: u64,
    totals: Totals,
    /// Rules with a state entry for this key, by rule index.
    pub(super) active: u64,
    /// Per-dimension data (a model's price).
    pub(super) extra: E,
}

/// Where a rule stands for one key.
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleState {
    /// Set while the alert is raised.
    pub(super) firing: Option<Firing>,
    /// When the alert was last raised (clock nanoseconds), for the cooldown.
    pub(super) last_raised: Option<u64>,
}

/// A raised alert.
#[derive(Debug, Clone, Copy)]
pub(super) struct Firing {
    pub(super) alert_id: Uuid,
    pub(super) since: u64,
    pub(super) since_wall: SystemTime,
    /// What the value had to exceed when the alert was raised.
    pub(super) threshold: f64,
    /// The baseline then, for unusual rules.
    pub(super) baseline: Option<f64>,
}

#[derive(Debug)]
struct Recent {
    slot: u32,
    generation: u32,
    trace: String,
}

/// The keys of one shard.
#[derive(Debug)]
pub(super) struct Table<E> {
    geometry: Geometry,
    capacity: usize,
    /// Slots by the key's hash: the key is hashed once per lookup, for the shard and for this.
    map: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Keys whose 64-bit hash equals another tracked key's: with a random SipHash key, never
    /// in practice, but then still right.
    collided: HashMap<Arc<str>, u32>,
    slots: Vec<Slot<E>>,
    buckets: Vec<Bucket>,
    periods: Vec<Period>,
    hists: Vec<[Hist; 4]>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen: the next to go.
    tail: u32,
    next_generation: u32,
    recent: Vec<Recent>,
    recent_next: usize,
    /// Rule states by (slot, rule index); only keys with an alert raised or cooling down.
    pub(super) states: HashMap<(u32, u16), RuleState>,
    pub(super) evicted: u64,
}

impl<E: Default> Table<E> {
    pub(super) fn new(geometry: Geometry, capacity: usize) -> Self {
        Self {
            geometry,
            capacity: capacity.max(1),
            map: HashMap::default(),
            collided: HashMap::new(),
            slots: Vec::new(),
            buckets: Vec::new(),
            periods: Vec::new(),
            hists: Vec::new(),
            head: NIL,
            tail: NIL,
            next_generation: 0,
            recent: Vec::new(),
            recent_next: 0,
            states: HashMap::new(),
            evicted: 0,
        }
    }

    /// How many keys are tracked.
    pub(super) fn len(&self) -> usize {
        self.map.len() + self.collided.len()
    }

    /// The slot of `key` (whose hash is `hash`), if it is tracked.
    pub(super) fn find(&self, key: &str, hash: u64) -> Option<u32> {
        if let Some(&slot) = self.map.get(&hash) {
            if *self.slots[slot as usize].key == *key {
                return Some(slot);
            }
        }
        if self.collided.is_empty() {
            None
        } else {
            self.collided.get(key).copied()
        }
    }

    /// The slot that [`Table::insert`] would reuse, when the table is full.
    pub(super) fn victim(&self) -> Option<u32> {
        (self.len() >= self.capacity && self.tail != NIL).then_some(self.tail)
    }

    fn unmap(&mut self, slot: u32) {
        let entry = &self.slots[slot as usize];
        if self.map.get(&entry.hash) == Some(&slot) {
            self.map.remove(&entry.hash);
        } else {
            self.collided.remove(&entry.key);
        }
    }

    /// Tracks `key` (whose hash is `hash`) from bucket `epoch` on, in a new slot or in the
    /// victim's (which the caller has dealt with), and makes it the most recently seen.
    pub(super) fn insert(&mut self, key: &str, hash: u64, epoch: u64) -> u32 {
        let geometry = self.geometry;
        let key: Arc<str> = Arc::from(key);
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = match self.victim() {
            Some(victim) => {
                self.unlink(victim);
                self.unmap(victim);
                self.evicted += 1;
                let old = &mut self.slots[victim as usize];
                *old = Slot::fresh(Arc::clone(&key), hash, generation, epoch);
                let index = victim as usize;
                let buckets = geometry.buckets as usize;
                let windows = geometry.baseline_windows as usize;
                self.buckets[index * buckets..(index + 1) * buckets].fill(Bucket::default());
                self.periods[index * windows..(index + 1) * windows].fill(Period::default());
                self.hists[index] = [Hist::default(); 4];
                victim
            }
            None => {
                let index = u32::try_from(self.slots.len()).unwrap_or(NIL - 1);
                self.slots
                    .push(Slot::fresh(Arc::clone(&key), hash, generation, epoch));
                self.buckets.extend(std::iter::repeat_n(
                    Bucket::default(),
                    geometry.buckets as usize,
                ));
                self.periods.extend(std::iter::repeat_n(
                    Period::default(),
                    geometry.baseline_windows as usize,
                ));
                self.hists.push([Hist::default(); 4]);
                index
            }
        };
        match self.map.entry(hash) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(key, slot);
            }
        }
        self.push_front(slot);
        slot
    }

    /// Makes `slot` the most recently seen, at bucket resolution: a key seen again in the
    /// bucket it was last moved in stays where it is, which spares the two neighbours' cache
    /// lines on the hot path. Eviction order is thus least recently seen to within a bucket.
    pub(super) fn touch(&mut self, slot: u32, epoch: u64) {
        let entry = &mut self.slots[slot as usize];
        if entry.seen_epoch == epoch {
            return;
        }
        entry.seen_epoch = epoch;
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let entry = &self.slots[slot as usize];
            (entry.prev, entry.next)
        };
        match prev {
            NIL => self.head = next,
            prev => self.slots[prev as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slots[next as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old_head = self.head;
        {
            let entry = &mut self.slots[slot as usize];
            entry.prev = NIL;
            entry.next = old_head;
        }
        if old_head != NIL {
            self.slots[old_head as usize].prev = slot;
        }
        self.head = slot;
        if self.tail == NIL {
            self.tail = slot;
        }
    }

    /// The slot's metadata.
    pub(super) fn slot(&self, slot: u32) -> &Slot<E> {
        &self.slots[slot as usize]
    }

    /// The slot's metadata, mutably.
    pub(super) fn slot_mut(&mut self, slot: u32) -> &mut Slot<E> {
        &mut self.slots[slot as usize]
    }

    /// How many slots exist (tracked keys, at most the capacity); slots are `0..slot_count()`.
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The windows of `slot`.
    pub(super) fn windows(&mut self, slot: u32) -> Windows<'_> {
        let index = slot as usize;
        let buckets = self.geometry.buckets as usize;
        let windows = self.geometry.baseline_windows as usize;
        let entry = &mut self.slots[index];
        Windows {
            geometry: &self.geometry,
            head_epoch: &mut entry.head_epoch,
            hist_epoch: &mut entry.hist_epoch,
            first_epoch: entry.first_epoch,
            totals: &mut entry.totals,
            buckets: &mut self.buckets[index * buckets..(index + 1) * buckets],
            periods: &mut self.periods[index * windows..(index + 1) * windows],
            hists: &mut self.hists[index],
        }
    }

    /// Remembers that `slot` saw a call of trace `trace`. Reuses the ring's strings, so it
    /// allocates only while the ring fills or a longer id than before comes by.
    pub(super) fn remember_trace(&mut self, slot: u32, trace: &str) {
        let generation = self.slots[slot as usize].generation;
        if self.recent.len() < RECENT_TRACES {
            self.recent.push(Recent {
                slot,
                generation,
                trace: trace.to_owned(),
            });
            return;
        }
        let entry = &mut self.recent[self.recent_next];
        entry.slot = slot;
        entry.generation = generation;
        entry.trace.clear();
        entry.trace.push_str(trace);
        self.recent_next = (self.recent_next + 1) % RECENT_TRACES;
    }

    /// Up to `count` distinct trace ids `slot` saw lately, newest first.
    pub(super) fn samples(&self, slot: u32, count: usize) -> Vec<String> {
        let generation = self.slots[slot as usize].generation;
        let len = self.recent.len();
        let mut samples: Vec<String> = Vec::new();
        for back in 1..=len {
            let index = (self.recent_next + len - back) % len;
            let entry = &self.recent[index];
            if entry.slot == slot
                && entry.generation == generation
                && !samples.contains(&entry.trace)
            {
                samples.push(entry.trace.clone());
                if samples.len() == count {
                    break;
                }
            }
        }
        samples
    }
}

impl<E: Default> Slot<E> {
    fn fresh(key: Arc<str>, hash: u64, generation: u32, epoch: u64) -> Self {
        Self {
            key,
            hash,
            generation,
            prev: NIL,
            next: NIL,
            head_epoch: epoch,
            hist_epoch: 0,
            first_epoch: epoch,
            seen_epoch: epoch,
            totals: Totals::default(),
            active: 0,
            extra: E::default(),
        }
    }
}

/// The sharded tables of one dimension.
#[derive(Debug)]
pub(super) struct Dimension<E> {
    hashing: Hashing,
    shards: Box<[Mutex<Table<E>>]>,
}

/// How a dimension hashes its keys: once per lookup, for the shard and for the map entry.
#[derive(Debug)]
pub(super) enum Hashing {
    /// SipHash with a random key, for keys users choose (distinct ids): crafted collisions
    /// cannot crowd one map.
    Sip(RandomState),
    /// A seeded multiply-rotate hash, for the few keys a service's own code names (models,
    /// providers): a table of a few hundred keys at most, so even crafted collisions cost
    /// little, and the hash a fifth of SipHash's time.
    Fast(u64),
}

impl Hashing {
    /// SipHash, randomly keyed.
    pub(super) fn sip() -> Self {
        Hashing::Sip(RandomState::new())
    }

    /// The fast hash, randomly seeded.
    pub(super) fn fast() -> Self {
        Hashing::Fast(RandomState::new().hash_one(0x5eed_u16))
    }

    fn hash(&self, key: &str) -> u64 {
        match self {
            Hashing::Sip(state) => state.hash_one(key),
            Hashing::Fast(seed) => fast_hash(key, *seed),
        }
    }
}

/// Eight bytes a step, multiply and rotate (as FxHash does), then a final mix so that both the
/// high bits (the shard) and the low bits (the map's buckets) depend on every byte.
fn fast_hash(key: &str, seed: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = seed;
    let mut chunks = key.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let hash = (hash ^ key.len() as u64).wrapping_mul(K);
    hash ^ (hash >> 29)
}

impl<E: Default> Dimension<E> {
    /// `capacity` keys in all, spread over up to `shards` tables of at least
    /// [`MIN_KEYS_PER_SHARD`] keys each: each table evicts its own least recently seen key.
    pub(super) fn new(
        geometry: Geometry,
        capacity: usize,
        shards: usize,
        hashing: Hashing,
    ) -> Self {
        let shards = shards.clamp(1, (capacity / MIN_KEYS_PER_SHARD).max(1));
        // The capacity split exactly: the first `capacity % shards` shards hold one more.
        let (base, extra) = (capacity / shards, capacity % shards);
        Self {
            hashing,
            shards: (0..shards)
                .map(|index| Mutex::new(Table::new(geometry, base + usize::from(index < extra))))
                .collect(),
        }
    }

    /// The shard that holds `key`, locked, and the key's hash for [`Table::find`] and
    /// [`Table::insert`].
    pub(super) fn lock(&self, key: &str) -> (MutexGuard<'_, Table<E>>, u64) {
        let hash = self.hashing.hash(key);
        let index = match self.shards.len() {
            1 => 0,
            // The high bits pick the shard; the map's buckets use the low ones.
            shards => ((hash >> 32) % shards as u64) as usize,
        };
        (lock(&self.shards[index]), hash)
    }

    /// Every shard, to lock one at a time.
    pub(super) fn shards(&self) -> &[Mutex<Table<E>>] {
        &self.shards
    }

    /// Keys tracked and keys evicted so far, over all shards.
    pub(super) fn counts(&self) -> (usize, u64) {
        self.shards.iter().fold((0, 0), |(len, evicted), shard| {
            let table = lock(shard);
            (len + table.len(), evicted + table.evicted)
        })
    }
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than lose it.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// Locks `mutex`, whether or not a panic poisoned it: the tables stay consistent between
/// statements, and the monitor must never panic into a caller.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry {
            bucket_nanos: 1_000,
            buckets: 4,
            baseline_windows: 2,
            min_baseline_windows: 1,
        }
    }

    #[test]
    fn the_least_recently_seen_key_goes_first() {
        let mut table: Table<()> = Table::new(geometry(), 3);
        let a = table.insert("a", 1, 0);
        let _b = table.insert("b", 2, 0);
        let _c = table.insert("c", 3, 0);
        // Seen again in the bucket it was inserted in: no move.
        table.touch(a, 0);
        assert_eq!(table.victim().map(|slot| &*table.slot(slot).key), Some("a"));
        table.touch(a, 1);
        // "b" is now the least recently seen.
        assert_eq!(table.victim().map(|slot| &*table.slot(slot).key), Some("b"));
        table.insert("d", 4, 0);
        assert_eq!(table.find("b", 2), None);
        assert!(table.find("a", 1).is_some() && table.find("d", 4).is_some());
        assert_eq!((table.len(), table.evicted), (3, 1));
        assert_eq!(table.slot_count(), 3);
    }

    #[test]
    fn keys_whose_hashes_collide_are_still_told_apart() {
        let mut table: Table<()> = Table::new(geometry(), 2);
        let a = table.insert("a", 7, 0);
        let b = table.insert("b", 7, 0);
        assert_ne!(a, b);
        assert_eq!(table.find("a", 7), Some(a));
        assert_eq!(table.find("b", 7), Some(b));
        assert_eq!(table.find("c", 7), None);
        // Evicting "a" (the least recently seen) frees its hash; "b" is still found.
        table.insert("c", 9, 0);
        assert_eq!(table.find("a", 7), None);
        assert_eq!(table.find("b", 7), Some(b));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn samples_are_the_keys_own_newest_distinct_traces() {
        let mut table: Table<()> = Table::new(geometry(), 2);
        let a = table.insert("a", 1, 0);
        let b = table.insert("b", 2, 0);
        for trace in ["t1", "t2", "t2", "t3"] {
            table.remember_trace(a, trace);
            table.remember_trace(b, "other");
        }
        assert_eq!(table.samples(a, 3), ["t3", "t2", "t1"]);
        assert_eq!(table.samples(a, 2), ["t3", "t2"]);
        // A new key in a reused slot does not inherit them.
        table.touch(b, 1);
        let c = table.insert("c", 3, 0);
        assert_eq!(c, a);
        assert!(table.samples(c, 3).is_empty());
    }
}
