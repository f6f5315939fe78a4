//! The rolling windows of one key: fixed-size counters and histograms, no allocation.
//!
//! A key's window is a ring of `buckets` counters of `window / buckets` each; a bucket that
//! leaves the window is added to the key's baseline ring, one slot per whole window, so that
//! "unusual" can compare the last window with the ones before it. Latency and time to first
//! token go into two half-window histograms with log-spaced bins.

use crate::event::ErrorKind;

/// How many error kinds a bucket counts apart.
pub(super) const KINDS: usize = 13;

/// Every error kind, in the order buckets count them.
pub(super) const ALL_KINDS: [ErrorKind; KINDS] = [
    ErrorKind::Timeout,
    ErrorKind::Connect,
    ErrorKind::RateLimit,
    ErrorKind::Auth,
    ErrorKind::BadRequest,
    ErrorKind::Server,
    ErrorKind::Decode,
    ErrorKind::Stream,
    ErrorKind::Cancelled,
    ErrorKind::Unsupported,
    ErrorKind::Budget,
    ErrorKind::Config,
    ErrorKind::Other,
];

/// Where a bucket counts errors of `kind`.
pub(super) fn kind_index(kind: ErrorKind) -> usize {
    // Exhaustive on purpose: a new kind must be given a counter here.
    match kind {
        ErrorKind::Timeout => 0,
        ErrorKind::Connect => 1,
        ErrorKind::RateLimit => 2,
        ErrorKind::Auth => 3,
        ErrorKind::BadRequest => 4,
        ErrorKind::Server => 5,
        ErrorKind::Decode => 6,
        ErrorKind::Stream => 7,
        ErrorKind::Cancelled => 8,
        ErrorKind::Unsupported => 9,
        ErrorKind::Budget => 10,
        ErrorKind::Config => 11,
        ErrorKind::Other => 12,
    }
}

/// The sizes every key's windows share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    /// Length of one bucket.
    pub(super) bucket_nanos: u64,
    /// Buckets per window.
    pub(super) buckets: u32,
    /// Whole windows kept for the baseline.
    pub(super) baseline_windows: u32,
    /// Whole windows a key must have been tracked for before it has a baseline.
    pub(super) min_baseline_windows: u32,
}

impl Geometry {
    /// The window's length in nanoseconds.
    pub(super) fn window_nanos(&self) -> u64 {
        self.bucket_nanos * u64::from(self.buckets)
    }

    /// The bucket epoch `now` falls in.
    pub(super) fn epoch(&self, now_nanos: u64) -> u64 {
        now_nanos / self.bucket_nanos
    }

    /// The half-window epoch `now` falls in (histograms).
    pub(super) fn half_epoch(&self, now_nanos: u64) -> u64 {
        now_nanos / (self.window_nanos() / 2).max(1)
    }

    /// `now` and its epochs, worked out once per event for every key it touches.
    pub(super) fn tick(&self, now_nanos: u64) -> Tick {
        Tick {
            nanos: now_nanos,
            epoch: self.epoch(now_nanos),
            half: self.half_epoch(now_nanos),
        }
    }
}

/// A moment in clock nanoseconds, with its bucket and half-window epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tick {
    pub(super) nanos: u64,
    pub(super) epoch: u64,
    pub(super) half: u64,
}

/// What one call adds to a key's window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sample {
    /// All prompt tokens, cached ones included, whatever the provider's convention.
    pub(super) input: u64,
    pub(super) output: u64,
    /// Prompt tokens read from the cache.
    pub(super) cached: u64,
    pub(super) cost_usd: f64,
    /// The failure, if the call failed or was refused.
    pub(super) error: Option<ErrorKind>,
    pub(super) latency_us: u64,
    pub(super) ttft_us: Option<u64>,
    /// The histogram bins of the latency and time to first token, found once per event.
    pub(super) latency_bin: u8,
    pub(super) ttft_bin: u8,
}

impl Sample {
    /// Whether a budget refused the call before it was made.
    pub(super) fn refused(&self) -> bool {
        self.error == Some(ErrorKind::Budget)
    }
}

/// USD in the integer unit windows count cost in.
const NANO_USD_PER_USD: f64 = 1e9;

/// The counts of one bucket. Counters saturate (at 4.29 billion tokens or calls, 65,535 errors
/// of one kind) rather than wrap. Cost is counted in nano-USD, so that a window's running total
/// is exact however many buckets come and go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Bucket {
    cost_nano_usd: u64,
    input: u32,
    output: u32,
    cached: u32,
    /// Calls made (refused calls are not).
    calls: u32,
    /// Failed calls among those made.
    errors: u32,
    /// Errors by kind, refusals (kind budget) included.
    kinds: [u16; KINDS],
}

/// Adds `value` to `field`, saturating; returns what was added.
fn gain(field: &mut u32, value: u64) -> u32 {
    let before = *field;
    *field = before.saturating_add(u32::try_from(value).unwrap_or(u32::MAX));
    *field - before
}

impl Bucket {
    /// Adds one call and says what the bucket gained (less than the call, once saturated), so
    /// that the window's totals stay the sum of its buckets.
    pub(super) fn add(&mut self, sample: &Sample) -> Totals {
        if let Some(kind) = sample.error {
            let count = &mut self.kinds[kind_index(kind)];
            *count = count.saturating_add(1);
        }
        if sample.refused() {
            return Totals::default();
        }
        // Rounded to the nearest nano-USD (the cast saturates), without a libm call.
        let cost = (sample.cost_usd.max(0.0) * NANO_USD_PER_USD + 0.5) as u64;
        let before = self.cost_nano_usd;
        self.cost_nano_usd = before.saturating_add(cost);
        Totals {
            cost_nano_usd: self.cost_nano_usd - before,
            input: u64::from(gain(&mut self.input, sample.input)),
            output: u64::from(gain(&mut self.output, sample.output)),
            cached: u64::from(gain(&mut self.cached, sample.cached)),
            calls: gain(&mut self.calls, 1),
            errors: gain(&mut self.errors, u64::from(sample.error.is_some())),
        }
    }

    fn is_empty(&self) -> bool {
        *self == Bucket::default()
    }
}

/// A key's running totals over its window: the sum of its buckets, kept as they come and go,
/// so that reading the window costs nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    cost_nano_usd: u64,
    input: u64,
    output: u64,
    cached: u64,
    calls: u32,
    errors: u32,
}

impl Totals {
    fn add(&mut self, gained: &Totals) {
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(gained.cost_nano_usd);
        self.input = self.input.saturating_add(gained.input);
        self.output = self.output.saturating_add(gained.output);
        self.cached = self.cached.saturating_add(gained.cached);
        self.calls = self.calls.saturating_add(gained.calls);
        self.errors = self.errors.saturating_add(gained.errors);
    }

    fn remove(&mut self, bucket: &Bucket) {
        self.cost_nano_usd = self.cost_nano_usd.saturating_sub(bucket.cost_nano_usd);
        self.input = self.input.saturating_sub(u64::from(bucket.input));
        self.output = self.output.saturating_sub(u64::from(bucket.output));
        self.cached = self.cached.saturating_sub(u64::from(bucket.cached));
        self.calls = self.calls.saturating_sub(bucket.calls);
        self.errors = self.errors.saturating_sub(bucket.errors);
    }
}

/// The totals of one whole window, kept for the baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Period {
    /// Which window (bucket epoch / buckets, modulo 2^32) these totals are of.
    tag: u32,
    cost_nano_usd: u64,
    input: u32,
    output: u32,
    cached: u32,
    calls: u32,
    errors: u32,
}

impl Period {
    fn add(&mut self, bucket: &Bucket) {
        self.cost_nano_usd = self.cost_nano_usd.saturating_add(bucket.cost_nano_usd);
        self.input = self.input.saturating_add(bucket.input);
        self.output = self.output.saturating_add(bucket.output);
        self.cached = self.cached.saturating_add(bucket.cached);
        self.calls = self.calls.saturating_add(bucket.calls);
        self.errors = self.errors.saturating_add(bucket.errors);
    }
}

/// Sums over a window (or a baseline window), as the rules read them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub(super) input: f64,
    pub(super) output: f64,
    pub(super) cached: f64,
    pub(super) calls: f64,
    pub(super) errors: f64,
    pub(super) cost_usd: f64,
}

impl Sums {
    fn of(totals: &Totals) -> Self {
        Self {
            input: totals.input as f64,
            output: totals.output as f64,
            cached: totals.cached as f64,
            calls: f64::from(totals.calls),
            errors: f64::from(totals.errors),
            cost_usd: totals.cost_nano_usd as f64 / NANO_USD_PER_USD,
        }
    }

    fn add_period(&mut self, period: &Period) {
        self.input += f64::from(period.input);
        self.output += f64::from(period.output);
        self.cached += f64::from(period.cached);
        self.calls += f64::from(period.calls);
        self.errors += f64::from(period.errors);
        self.cost_usd += period.cost_nano_usd as f64 / NANO_USD_PER_USD;
    }

    fn scaled(self, by: f64) -> Self {
        Self {
            input: self.input * by,
            output: self.output * by,
            cached: self.cached * by,
            calls: self.calls * by,
            errors: self.errors * by,
            cost_usd: self.cost_usd * by,
        }
    }
}

/// Histogram bins: bin 0 is everything below 12.7 ms, bin `i` covers
/// `[EDGES_US[i], EDGES_US[i + 1])`, the last bin everything from 5.5 minutes. Edges grow by
/// 2^(2/3) (about 1.59) from 8 ms: `EDGES_US[i]` is `8,000 × 2^(2i/3)` µs, rounded up.
pub(super) const BINS: usize = 24;
pub(super) const EDGES_US: [u64; BINS] = [
    0,
    12_700,
    20_159,
    32_000,
    50_797,
    80_635,
    128_000,
    203_188,
    322_540,
    512_000,
    812_750,
    1_290_160,
    2_048_000,
    3_250_998,
    5_160_637,
    8_192_000,
    13_003_990,
    20_642_547,
    32_768_000,
    52_015_958,
    82_570_186,
    131_072_000,
    208_063_831,
    330_280_744,
];

/// The bin `micros` falls in: a binary search of five steps, no floating point.
pub(super) fn bin_of(micros: u64) -> u8 {
    // EDGES_US[0] is 0, so at least one edge is <= micros.
    (EDGES_US.partition_point(|&edge| edge <= micros) - 1) as u8
}

/// A latency histogram over half a window, with the extremes it saw: one cache line.
///
/// Counts are 16-bit. When a bin is full (65,535 calls in half a window), every bin is halved
/// and `shift` counted: the shape is kept, and calls after that weigh twice as much as those
/// before, a mild lean towards the latest calls that only the busiest keys ever see.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(align(64))]
pub(super) struct Hist {
    counts: [u16; BINS],
    min_us: u32,
    max_us: u32,
    shift: u8,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: [0; BINS],
            min_us: u32::MAX,
            max_us: 0,
            shift: 0,
        }
    }
}

impl Hist {
    pub(super) fn add(&mut self, bin: u8, micros: u64) {
        let bin = usize::from(bin);
        if self.counts[bin] == u16::MAX {
            for count in &mut self.counts {
                // Halved, rounding up so that a bin that saw a call keeps one.
                *count = count.div_ceil(2);
            }
            self.shift = self.shift.saturating_add(1);
        }
        self.counts[bin] += 1;
        let micros = u32::try_from(micros).unwrap_or(u32::MAX);
        self.min_us = self.min_us.min(micros);
        self.max_us = self.max_us.max(micros);
    }

    /// The `percentile` (1–99) of both histograms together, in seconds; `None` when empty.
    ///
    /// The rank's bin is found, the value interpolated linearly inside it, and the result kept
    /// within the smallest and largest value seen, so equal samples give their own value.
    pub(super) fn percentile(a: &Hist, b: &Hist, percentile: u8) -> Option<f64> {
        // A halved histogram's counts stand for 2^shift calls each.
        let weight = |hist: &Hist| f64::from(1u32 << hist.shift.min(31));
        let (weight_a, weight_b) = (weight(a), weight(b));
        let mut counts = [0f64; BINS];
        let mut total = 0.0;
        for (index, count) in counts.iter_mut().enumerate() {
            *count = f64::from(a.counts[index]) * weight_a + f64::from(b.counts[index]) * weight_b;
            total += *count;
        }
        if total == 0.0 {
            return None;
        }
        let min = f64::from(a.min_us.min(b.min_us));
        let max = f64::from(a.max_us.max(b.max_us));
        let rank = ((f64::from(percentile) / 100.0) * total).ceil().max(1.0);
        let mut below = 0.0;
        for (index, &count) in counts.iter().enumerate() {
            if count == 0.0 || below + count < rank {
                below += count;
                continue;
            }
            let fraction = (rank - below) / count;
            let low = (EDGES_US[index] as f64).max(min);
            let high = match EDGES_US.get(index + 1) {
                Some(&edge) => (edge as f64).min(max),
                None => max,
            };
            let estimate = low + (high - low).max(0.0) * fraction;
            return Some(estimate.clamp(min, max) / 1e6);
        }
        Some(max / 1e6)
    }
}

/// The windows of one key: its bucket ring, baseline ring and histograms, by reference into
/// the arrays of the table that holds them.
pub(super) struct Windows<'a> {
    pub(super) geometry: &'a Geometry,
    pub(super) head_epoch: &'a mut u64,
    pub(super) hist_epoch: &'a mut u64,
    pub(super) first_epoch: u64,
    pub(super) totals: &'a mut Totals,
    pub(super) buckets: &'a mut [Bucket],
    pub(super) periods: &'a mut [Period],
    /// Latency halves, then time-to-first-token halves.
    pub(super) hists: &'a mut [Hist; 4],
}

impl Windows<'_> {
    /// Moves the windows to `now`: buckets that left the window go to the baseline.
    ///
    /// At most one pass over the buckets, whatever the time that passed. Time that went back is
    /// treated as time that stood still.
    pub(super) fn advance(&mut self, tick: &Tick) {
        let geometry = *self.geometry;
        let buckets = u64::from(geometry.buckets);
        let epoch = tick.epoch;
        let head = *self.head_epoch;
        if epoch > head {
            let steps = (epoch - head).min(buckets);
            for step in 1..=steps {
                let index = ((head + step) % buckets) as usize;
                let bucket = self.buckets[index];
                if !bucket.is_empty() {
                    // The bucket at this index held epoch head + step - buckets.
                    let old_epoch = (head + step).saturating_sub(buckets);
                    self.retire(old_epoch, &bucket);
                    self.totals.remove(&bucket);
                    self.buckets[index] = Bucket::default();
                }
            }
            *self.head_epoch = epoch;
        }
        let half = tick.half;
        let hist_head = *self.hist_epoch;
        if half > hist_head {
            if half - hist_head >= 2 {
                *self.hists = [Hist::default(); 4];
            } else {
                let index = (half % 2) as usize;
                self.hists[index] = Hist::default();
                self.hists[2 + index] = Hist::default();
            }
            *self.hist_epoch = half;
        }
    }

    fn retire(&mut self, epoch: u64, bucket: &Bucket) {
        let geometry = self.geometry;
        let windows = u64::from(geometry.baseline_windows);
        if windows == 0 {
            return;
        }
        let period_number = epoch / u64::from(geometry.buckets);
        let period = &mut self.periods[(period_number % windows) as usize];
        // Window numbers are kept modulo 2^32: a slot is reused long before that wraps.
        let period_tag = period_number as u32;
        if period.tag != period_tag {
            *period = Period {
                tag: period_tag,
                ..Period::default()
            };
        }
        period.add(bucket);
    }

    /// Adds one call, at the time the windows were last advanced to.
    pub(super) fn record(&mut self, sample: &Sample) {
        let buckets = u64::from(self.geometry.buckets);
        let index = (*self.head_epoch % buckets) as usize;
        let gained = self.buckets[index].add(sample);
        self.totals.add(&gained);
        if sample.refused() {
            return;
        }
        let half = (*self.hist_epoch % 2) as usize;
        self.hists[half].add(sample.latency_bin, sample.latency_us);
        if let Some(ttft) = sample.ttft_us {
            self.hists[2 + half].add(sample.ttft_bin, ttft);
        }
    }

    /// The sums over the window, from the running totals.
    pub(super) fn sums(&self) -> Sums {
        Sums::of(self.totals)
    }

    /// Errors by kind over the window, refusals included.
    pub(super) fn kinds(&self) -> [u64; KINDS] {
        let mut kinds = [0u64; KINDS];
        for bucket in self.buckets.iter() {
            for (total, &count) in kinds.iter_mut().zip(&bucket.kinds) {
                *total += u64::from(count);
            }
        }
        kinds
    }

    /// Errors of one kind over the window.
    pub(super) fn kind(&self, kind: ErrorKind) -> u64 {
        let index = kind_index(kind);
        self.buckets
            .iter()
            .map(|bucket| u64::from(bucket.kinds[index]))
            .sum()
    }

    /// The mean window of the baseline, and how many whole windows it is the mean of; `None`
    /// while the key has been tracked for fewer than `min_baseline_windows` whole windows.
    ///
    /// A baseline window counts when it has left the rolling window entirely and the key was
    /// tracked from its start; windows without calls count as zero.
    pub(super) fn baseline(&self) -> Option<(Sums, u32)> {
        let geometry = self.geometry;
        let buckets = u64::from(geometry.buckets);
        let windows = u64::from(geometry.baseline_windows);
        if windows == 0 {
            return None;
        }
        // The last window whose buckets have all left the ring.
        let last = ((*self.head_epoch + 1) / buckets).checked_sub(2)?;
        let first_tracked = self.first_epoch.div_ceil(buckets);
        let first = last.saturating_sub(windows - 1).max(first_tracked);
        if first > last {
            return None;
        }
        let count = last - first + 1;
        if count < u64::from(geometry.min_baseline_windows.max(1)) {
            return None;
        }
        let mut sums = Sums::default();
        for number in first..=last {
            let period = &self.periods[(number % windows) as usize];
            if period.tag == number as u32 {
                sums.add_period(period);
            }
        }
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Some((sums.scaled(1.0 / f64::from(count)), count))
    }

    /// A latency percentile over the last half window to whole window, in seconds.
    pub(super) fn latency(&self, percentile: u8) -> Option<f64> {
        Hist::percentile(&self.hists[0], &self.hists[1], percentile)
    }

    /// A time-to-first-token percentile over the last half window to whole window, in seconds.
    pub(super) fn ttft(&self, percentile: u8) -> Option<f64> {
        Hist::percentile(&self.hists[2], &self.hists[3], percentile)
    }

    /// What the window spent, for a budget: tokens (input and output) and cost in USD.
    pub(super) fn spent(&self) -> (u64, f64) {
        let totals = &*self.totals;
        (
            totals.input.saturating_add(totals.output),
            totals.cost_nano_usd as f64 / NANO_USD_PER_USD,
        )
    }

    /// How long (nanoseconds) until what `value` reads over the window falls below `limit`, as
    /// buckets leave it oldest first; `None` when it never would (a limit of zero).
    pub(super) fn relief_after(
        &self,
        now_nanos: u64,
        value: impl Fn(&Bucket) -> f64,
        limit: f64,
    ) -> Option<u64> {
        let geometry = self.geometry;
        let buckets = u64::from(geometry.buckets);
        let head = *self.head_epoch;
        let mut total: f64 = self.buckets.iter().map(&value).sum();
        // Oldest first: epochs head - buckets + 1 ..= head.
        for age in (0..buckets).rev() {
            if total < limit {
                break;
            }
            let Some(epoch) = head.checked_sub(age) else {
                continue;
            };
            let bucket = &self.buckets[(epoch % buckets) as usize];
            total -= value(bucket);
            if total < limit {
                // The bucket of `epoch` leaves when the window passes its end.
                let leaves_at = (epoch + buckets) * geometry.bucket_nanos;
                return Some(leaves_at.saturating_sub(now_nanos));
            }
        }
        (total < limit).then_some(0)
    }
}

/// Token and cost readers for [`Windows::relief_after`].
pub(super) fn bucket_tokens(bucket: &Bucket) -> f64 {
    f64::from(bucket.input) + f64::from(bucket.output)
}

/// The cost of a bucket, for [`Windows::relief_after`].
pub(super) fn bucket_cost(bucket: &Bucket) -> f64 {
    bucket.cost_nano_usd as f64 / NANO_USD_PER_USD
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000_000_000;

    fn geometry() -> Geometry {
        Geometry {
            bucket_nanos: MINUTE,
            buckets: 10,
            baseline_windows: 6,
            min_baseline_windows: 1,
        }
    }

    struct Key {
        geometry: Geometry,
        head: u64,
        hist: u64,
        first: u64,
        totals: Totals,
        buckets: Vec<Bucket>,
        periods: Vec<Period>,
        hists: [Hist; 4],
    }

    impl Key {
        fn new(now: u64) -> Self {
            let geometry = geometry();
            Self {
                geometry,
                head: geometry.epoch(now),
                hist: geometry.half_epoch(now),
                first: geometry.epoch(now),
                totals: Totals::default(),
                buckets: vec![Bucket::default(); 10],
                periods: vec![Period::default(); 6],
                hists: [Hist::default(); 4],
            }
        }

        fn windows(&mut self) -> Windows<'_> {
            Windows {
                geometry: &self.geometry,
                head_epoch: &mut self.head,
                hist_epoch: &mut self.hist,
                first_epoch: self.first,
                totals: &mut self.totals,
                buckets: &mut self.buckets,
                periods: &mut self.periods,
                hists: &mut self.hists,
            }
        }

        fn call(&mut self, now: u64, tokens: u64) {
            let tick = self.geometry.tick(now);
            let mut windows = self.windows();
            windows.advance(&tick);
            windows.record(&Sample {
                input: tokens,
                latency_us: 1_000_000,
                latency_bin: bin_of(1_000_000),
                ..Sample::default()
            });
        }

        fn advance(&mut self, now: u64) {
            let tick = self.geometry.tick(now);
            self.windows().advance(&tick);
        }
    }

    #[test]
    fn a_bucket_leaves_the_window_after_one_window() {
        let mut key = Key::new(0);
        key.call(0, 100);
        key.call(9 * MINUTE, 50);
        assert_eq!(key.windows().sums().input, 150.0);
        key.advance(10 * MINUTE);
        assert_eq!(key.windows().sums().input, 50.0);
        key.advance(100 * MINUTE);
        assert_eq!(key.windows().sums().input, 0.0);
    }

    #[test]
    fn the_baseline_is_the_mean_of_whole_windows_gone_by() {
        let mut key = Key::new(0);
        // 1,000 tokens a minute for 20 minutes: windows 0 and 1 hold 10,000 each.
        for minute in 0..20 {
            key.call(minute * MINUTE, 1_000);
        }
        // At minute 19 the ring holds minutes 10..=19: window 0 is whole and gone.
        let (mean, count) = key.windows().baseline().unwrap();
        assert_eq!((mean.input, count), (10_000.0, 1));
        // At minute 29 window 1 has left too; at 35, window 2 is partly gone and not counted.
        key.advance(35 * MINUTE);
        let (mean, count) = key.windows().baseline().unwrap();
        assert_eq!((mean.input, count), (10_000.0, 2));
        // Quiet windows count as zero: at minute 59, windows 0..=4 are whole and gone.
        key.advance(59 * MINUTE);
        let (mean, count) = key.windows().baseline().unwrap();
        assert_eq!((mean.input, count), (4_000.0, 5));
    }

    #[test]
    fn a_key_first_seen_mid_window_has_no_baseline_for_that_window() {
        let mut key = Key::new(5 * MINUTE);
        key.call(5 * MINUTE, 1_000);
        key.advance(19 * MINUTE);
        assert_eq!(key.windows().baseline(), None);
        key.advance(29 * MINUTE);
        assert_eq!(
            key.windows().baseline().map(|(mean, n)| (mean.input, n)),
            Some((0.0, 1))
        );
    }

    #[test]
    fn running_totals_stay_the_sum_of_the_buckets() {
        let mut key = Key::new(0);
        for minute in 0..35 {
            key.call(minute * MINUTE + 7, 100 + minute);
            let windows = key.windows();
            let input: u64 = windows
                .buckets
                .iter()
                .map(|bucket| u64::from(bucket.input))
                .sum();
            assert_eq!(windows.totals.input, input, "minute {minute}");
        }
        key.advance(200 * MINUTE);
        assert_eq!(key.totals, Totals::default());
    }

    #[test]
    fn cost_is_counted_exactly_in_nano_usd() {
        let mut bucket = Bucket::default();
        let gained = bucket.add(&Sample {
            cost_usd: 0.000_001_5,
            ..Sample::default()
        });
        assert_eq!(gained.cost_nano_usd, 1_500);
        assert_eq!(bucket_cost(&bucket), 0.000_001_5);
    }

    #[test]
    fn refused_calls_count_as_budget_errors_only() {
        let mut bucket = Bucket::default();
        bucket.add(&Sample {
            input: 10,
            error: Some(ErrorKind::Budget),
            ..Sample::default()
        });
        assert_eq!((bucket.calls, bucket.errors, bucket.input), (0, 0, 0));
        assert_eq!(bucket.kinds[kind_index(ErrorKind::Budget)], 1);
    }

    #[test]
    fn bins_are_log_spaced_and_edges_land_in_their_bin() {
        for (index, &edge) in EDGES_US.iter().enumerate().skip(1) {
            let exact = 8_000.0 * (2.0 * index as f64 / 3.0).exp2();
            assert_eq!(edge, exact.ceil() as u64, "edge {index}");
            assert_eq!(usize::from(bin_of(edge)), index, "edge of bin {index}");
            assert_eq!(usize::from(bin_of(edge - 1)), index - 1, "below {index}");
        }
        assert_eq!(bin_of(0), 0);
        assert_eq!(usize::from(bin_of(u64::MAX)), BINS - 1);
    }

    #[test]
    fn equal_samples_give_their_own_percentile() {
        let mut hist = Hist::default();
        for _ in 0..20 {
            hist.add(bin_of(25_000_000), 25_000_000);
        }
        let p95 = Hist::percentile(&hist, &Hist::default(), 95).unwrap();
        assert_eq!(p95, 25.0);
    }

    #[test]
    fn percentiles_stay_within_a_bin_of_the_truth() {
        let mut hist = Hist::default();
        // 1..=100 seconds: the true p95 is 95 s, p50 50 s.
        for second in 1..=100u64 {
            hist.add(bin_of(second * 1_000_000), second * 1_000_000);
        }
        let p95 = Hist::percentile(&hist, &Hist::default(), 95).unwrap();
        let p50 = Hist::percentile(&hist, &Hist::default(), 50).unwrap();
        assert!((p95 / 95.0 - 1.0).abs() < 0.2, "{p95}");
        assert!((p50 / 50.0 - 1.0).abs() < 0.2, "{p50}");
        assert_eq!(
            Hist::percentile(&Hist::default(), &Hist::default(), 95),
            None
        );
    }

    #[test]
    fn a_full_bin_halves_the_histogram_and_keeps_its_shape() {
        let mut hist = Hist::default();
        // 90 % at 1 s, 10 % at 30 s, far past what 16 bits hold.
        for call in 0..200_000u64 {
            let micros = if call % 10 == 9 {
                30_000_000
            } else {
                1_000_000
            };
            hist.add(bin_of(micros), micros);
        }
        assert!(hist.shift >= 2, "{hist:?}");
        let p50 = Hist::percentile(&hist, &Hist::default(), 50).unwrap();
        let p95 = Hist::percentile(&hist, &Hist::default(), 95).unwrap();
        assert!((0.8..=1.3).contains(&p50), "{p50}");
        assert!(p95 > 20.0, "{p95}");
        assert_eq!(std::mem::size_of::<Hist>(), 64);
    }

    #[test]
    fn relief_names_when_the_oldest_buckets_leave() {
        let mut key = Key::new(0);
        key.call(0, 600);
        key.call(2 * MINUTE, 300);
        key.call(4 * MINUTE + 30_000_000_000, 100);
        let windows = key.windows();
        let now = 4 * MINUTE + 30_000_000_000;
        // 1,000 tokens against a limit of 500: the minute-0 bucket leaves at minute 10.
        assert_eq!(
            windows.relief_after(now, bucket_tokens, 500.0),
            Some(10 * MINUTE - now)
        );
        // Against 200, minute 2 must leave too: minute 12.
        assert_eq!(
            windows.relief_after(now, bucket_tokens, 200.0),
            Some(12 * MINUTE - now)
        );
        // Against 50, the newest bucket must leave as well.
        assert_eq!(
            windows.relief_after(now, bucket_tokens, 50.0),
            Some(14 * MINUTE - now)
        );
        assert_eq!(windows.relief_after(now, bucket_tokens, 0.0), None);
    }
}
