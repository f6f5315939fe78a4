//! Events into PostHog payloads: serialized with the size guard, gzipped as they come, and cut
//! by their compressed size on the wire.
//!
//! A request body is one gzip member stitched from three deflate segments, so a payload can
//! wait in the outage buffer compressed, without the key, and still get a fresh `sent_at` at
//! each try:
//!
//! 1. `{"api_key":"…","batch":[` as stored blocks, made once per sink;
//! 2. the events, comma-separated, compressed, ended by a sync flush (the payload);
//! 3. `],"sent_at":"…"}` as a final stored block, made at each try;
//!
//! then the CRC-32 of the three (combined, never recomputed over the whole) and the length.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::SystemTime;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::format::size;
use super::format::{capture_event, TRACE_SAMPLE_RATE};
use crate::event::Event;
use crate::sink::batch::stats::add;
use crate::sink::batch::{Counters, Payload};

/// Level 1 compresses batches of similar JSON events about 6–8× at several hundred MB/s,
/// which the throughput target needs; higher levels gain little here.
const GZIP_LEVEL: u32 = 1;
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Bytes of a body outside the events: the envelope, `sent_at`, gzip's framing, and slack for
/// what the compressor still holds.
pub(crate) const BODY_OVERHEAD: usize = 512;
/// Uncompressed bytes per payload at most, whatever the compressed cap: PostHog caps what it
/// decompresses (100 MiB on current servers), and a split must stay cheap.
const MAX_PLAIN_BYTES: usize = 20 * 1024 * 1024;

/// Which route a payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// `/i/v0/ai/batch/`.
    Ai,
    /// `/batch/`.
    Batch,
}

/// A route's size budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Per event, quotes and backslashes counted twice.
    pub(crate) event_bytes: usize,
    /// Per request body, as sent (compressed when gzip is on).
    pub(crate) batch_bytes: usize,
}

impl Limits {
    /// What one event may cost so that it fits a batch on its own, whatever it compresses to.
    fn event_budget(&self) -> usize {
        self.event_bytes
            .min(self.batch_bytes.saturating_sub(BODY_OVERHEAD))
            .min(MAX_PLAIN_BYTES)
    }
}

/// The encoder's settings.
#[derive(Debug, Clone)]
pub(crate) struct Encoding {
    pub(crate) gzip: bool,
    pub(crate) batch_size: usize,
    pub(crate) batch: Limits,
    pub(crate) ai: Limits,
    /// Trace sampling in force: kept events with a trace id carry the rate.
    pub(crate) sample_rate: Option<f64>,
}

impl Encoding {
    pub(crate) fn limits(&self, lane: Lane) -> Limits {
        match lane {
            Lane::Ai => self.ai,
            Lane::Batch => self.batch,
        }
    }
}

/// One request's events, compressed, with what is needed to split or re-route them.
#[derive(Debug)]
pub(crate) struct PosthogPayload {
    /// The events' JSON as a raw deflate segment ended by a sync flush (gzip on), or as is.
    data: Vec<u8>,
    /// CRC-32 and length of the events' JSON.
    crc: u32,
    plain_len: u64,
    /// Where each event ends in the JSON; the next starts one byte (the comma) later.
    ends: Vec<u32>,
    pub(crate) lane: Lane,
    gzip: bool,
}

impl Payload for PosthogPayload {
    fn events(&self) -> usize {
        self.ends.len()
    }

    fn bytes(&self) -> usize {
        self.data.len() + self.ends.len() * 4 + 64
    }
}

/// `{"api_key":"…","batch":[`, ready to go in front of every payload.
#[derive(Debug, Clone)]
pub(crate) struct Prefix {
    plain: Vec<u8>,
    /// As non-final stored deflate blocks.
    stored: Vec<u8>,
    crc: u32,
}

impl Prefix {
    pub(crate) fn new(api_key: &str) -> Self {
        let mut plain = b"{\"api_key\":".to_vec();
        // A string always serializes.
        let _ = serde_json::to_writer(&mut plain, api_key);
        plain.extend_from_slice(b",\"batch\":[");
        let mut stored = Vec::with_capacity(plain.len() + 16);
        stored_blocks(&plain, false, &mut stored);
        Self {
            crc: crc32fast::hash(&plain),
            plain,
            stored,
        }
    }
}

/// `bytes` as stored deflate blocks; the last one final when `last`. Starts byte-aligned.
fn stored_blocks(bytes: &[u8], last: bool, out: &mut Vec<u8>) {
    let mut chunks = bytes.chunks(u16::MAX as usize).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let final_block = last && chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(final_block));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

impl PosthogPayload {
    /// The request body, stamped with `sent_at` now.
    pub(crate) fn body(&self, prefix: &Prefix, now: SystemTime) -> Vec<u8> {
        let sent_at = humantime::format_rfc3339_millis(now);
        let suffix = format!("],\"sent_at\":\"{sent_at}\"}}");
        if !self.gzip {
            let mut body = Vec::with_capacity(prefix.plain.len() + self.data.len() + suffix.len());
            body.extend_from_slice(&prefix.plain);
            body.extend_from_slice(&self.data);
            body.extend_from_slice(suffix.as_bytes());
            return body;
        }
        let mut body = Vec::with_capacity(
            GZIP_HEADER.len() + prefix.stored.len() + self.data.len() + suffix.len() + 32,
        );
        body.extend_from_slice(&GZIP_HEADER);
        body.extend_from_slice(&prefix.stored);
        body.extend_from_slice(&self.data);
        stored_blocks(suffix.as_bytes(), true, &mut body);
        let mut crc =
            crc32fast::Hasher::new_with_initial_len(prefix.crc, prefix.plain.len() as u64);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(
            self.crc,
            self.plain_len,
        ));
        let mut tail = crc32fast::Hasher::new();
        tail.update(suffix.as_bytes());
        crc.combine(&tail);
        let total = prefix.plain.len() as u64 + self.plain_len + suffix.len() as u64;
        body.extend_from_slice(&crc.finalize().to_le_bytes());
        body.extend_from_slice(&(total as u32).to_le_bytes());
        body
    }

    /// The events' JSON, comma-separated.
    fn plain(&self) -> Option<Cow<'_, [u8]>> {
        if !self.gzip {
            return Some(Cow::Borrowed(&self.data));
        }
        let mut plain = Vec::with_capacity(self.plain_len as usize);
        let mut inflate = Decompress::new(false);
        let mut input = &self.data[..];
        loop {
            plain.reserve(64 * 1024);
            let before = inflate.total_in();
            let status = inflate
                .decompress_vec(input, &mut plain, FlushDecompress::Sync)
                .ok()?;
            input = &input[(inflate.total_in() - before) as usize..];
            if plain.len() as u64 >= self.plain_len || status == Status::StreamEnd {
                break;
            }
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
        }
        (plain.len() as u64 == self.plain_len).then_some(Cow::Owned(plain))
    }

    /// Each event's JSON, in order.
    pub(crate) fn event_jsons(&self) -> Option<Vec<Vec<u8>>> {
        let plain = self.plain()?;
        let mut start = 0usize;
        let mut events = Vec::with_capacity(self.ends.len());
        for &end in &self.ends {
            let end = end as usize;
            events.push(plain.get(start..end)?.to_vec());
            start = end + 1;
        }
        Some(events)
    }

    /// The payload as spool bytes: lane, gzip flag, CRC, length, ends, data.
    pub(crate) fn to_spool(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + self.ends.len() * 4 + 32);
        out.push(match self.lane {
            Lane::Ai => b'a',
            Lane::Batch => b'b',
        });
        out.push(u8::from(self.gzip));
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&self.plain_len.to_le_bytes());
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for end in &self.ends {
            out.extend_from_slice(&end.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }

    pub(crate) fn from_spool(bytes: &[u8]) -> Option<Self> {
        let lane = match *bytes.first()? {
            b'a' => Lane::Ai,
            b'b' => Lane::Batch,
            _ => return None,
        };
        let gzip = match *bytes.get(1)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let crc = u32::from_le_bytes(bytes.get(2..6)?.try_into().ok()?);
        let plain_len = u64::from_le_bytes(bytes.get(6..14)?.try_into().ok()?);
        let count = u32::from_le_bytes(bytes.get(14..18)?.try_into().ok()?) as usize;
        let mut ends = Vec::with_capacity(count);
        let mut at = 18;
        for _ in 0..count {
            ends.push(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
            at += 4;
        }
        let payload = Self {
            data: bytes.get(at..)?.to_vec(),
            crc,
            plain_len,
            ends,
            lane,
            gzip,
        };
        // A file that decodes to other JSON than it claims is corrupt.
        let plain = payload.plain()?;
        (crc32fast::hash(&plain) == crc
            && payload.ends.last().copied().map(u64::from) == Some(plain_len))
        .then_some(())?;
        drop(plain);
        Some(payload)
    }
}

thread_local! {
    /// A compressor kept per encoder thread: making one allocates and clears a few hundred KB.
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

fn take_compressor() -> Compress {
    COMPRESSOR
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(|| Compress::new(Compression::new(GZIP_LEVEL), false))
}

fn give_back(compress: Compress) {
    COMPRESSOR.with(|slot| *slot.borrow_mut() = Some(compress));
}

/// Fills payloads of one lane up to the count and the compressed-size cap.
struct Builder<'a> {
    encoding: &'a Encoding,
    lane: Lane,
    limits: Limits,
    compress: Option<Compress>,
    data: Vec<u8>,
    crc: crc32fast::Hasher,
    plain_len: u64,
    ends: Vec<u32>,
    /// Input given to the compressor since its output last grew: still inside it.
    held: usize,
    out: Vec<PosthogPayload>,
}

impl<'a> Builder<'a> {
    fn new(encoding: &'a Encoding, lane: Lane) -> Self {
        Self {
            encoding,
            lane,
            limits: encoding.limits(lane),
            compress: None,
            data: Vec::new(),
            crc: crc32fast::Hasher::new(),
            plain_len: 0,
            ends: Vec::new(),
            held: 0,
            out: Vec::new(),
        }
    }

    /// The most the body could be on the wire if sealed now.
    fn estimate(&self) -> usize {
        if self.encoding.gzip {
            // Deflate never grows data by more than a few bytes per 16 KB block.
            self.data.len() + self.held + self.held / 256 + BODY_OVERHEAD
        } else {
            self.data.len() + BODY_OVERHEAD
        }
    }

    fn push(&mut self, json: &[u8]) {
        if !self.ends.is_empty()
            && (self.ends.len() >= self.encoding.batch_size
                || self.estimate() + json.len() + 1 > self.limits.batch_bytes
                || self.plain_len as usize + json.len() + 1 > MAX_PLAIN_BYTES)
        {
            self.seal();
        }
        if !self.ends.is_empty() {
            self.write(b",");
        }
        self.write(json);
        self.ends.push(self.plain_len as u32);
    }

    fn write(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.plain_len += bytes.len() as u64;
        if !self.encoding.gzip {
            self.data.extend_from_slice(bytes);
            return;
        }
        let compress = self.compress.get_or_insert_with(take_compressor);
        let before = self.data.len();
        deflate(compress, bytes, &mut self.data, FlushCompress::None);
        if self.data.len() > before {
            self.held = 0;
        } else {
            self.held += bytes.len();
        }
    }

    fn seal(&mut self) {
        if self.ends.is_empty() {
            return;
        }
        if let Some(compress) = self.compress.as_mut() {
            deflate(compress, &[], &mut self.data, FlushCompress::Sync);
            compress.reset();
        }
        let mut data = std::mem::take(&mut self.data);
        data.shrink_to_fit();
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.out.push(PosthogPayload {
            data,
            crc,
            plain_len: std::mem::take(&mut self.plain_len),
            ends: std::mem::take(&mut self.ends),
            lane: self.lane,
            gzip: self.encoding.gzip,
        });
        self.held = 0;
    }

    fn finish(mut self) -> Vec<PosthogPayload> {
        self.seal();
        // Reset at each seal: ready for the next payload on this thread.
        if let Some(compress) = self.compress.take() {
            give_back(compress);
        }
        std::mem::take(&mut self.out)
    }
}

/// Runs the compressor over all of `input`, then flushes as asked.
fn deflate(compress: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    loop {
        out.reserve(input.len() / 2 + 1024);
        let before = compress.total_in();
        // Compressing into a Vec with room cannot fail.
        if compress.compress_vec(input, out, flush).is_err() {
            return;
        }
        input = &input[(compress.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            return;
        }
    }
}

/// The encoder: one per sink, shared by the encoder threads.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub(crate) encoding: Encoding,
}

impl Encoder {
    /// `events` as payloads, each event in `lane_of(event)`.
    pub(crate) fn encode(
        &self,
        events: impl IntoIterator<Item = Event>,
        lane_of: impl Fn(&Event) -> Lane,
        counters: &Counters,
    ) -> Vec<PosthogPayload> {
        let mut ai = Builder::new(&self.encoding, Lane::Ai);
        let mut batch = Builder::new(&self.encoding, Lane::Batch);
        let mut scratch = Vec::with_capacity(4 * 1024);
        for mut event in events {
            let lane = lane_of(&event);
            let mut changed = size::prepare(&mut event);
            if let Some(rate) = self.encoding.sample_rate {
                if event.envelope().trace_id.is_some() && super::sample::applies_to(&event) {
                    insert_sample_rate(&mut event, rate);
                }
            }
            scratch.clear();
            if serde_json::to_writer(&mut scratch, &capture_event(&event)).is_err() {
                // Unreachable for the crate's own events; never send half an object.
                add(&counters.oversize, 1);
                counters.warn_first_drop("posthog", "event could not be serialized");
                continue;
            }
            drop(event);
            let budget = self.encoding.limits(lane).event_budget();
            let json = if size::fits(&scratch, budget) {
                Cow::Borrowed(&scratch[..])
            } else {
                changed = true;
                Cow::Owned(size::shrink(&scratch, budget))
            };
            if !size::fits(&json, budget) {
                add(&counters.oversize, 1);
                counters.warn_first_drop("posthog", "event too large even after shrinking");
                continue;
            }
            if changed {
                add(&counters.shrunk, 1);
            }
            match lane {
                Lane::Ai => ai.push(&json),
                Lane::Batch => batch.push(&json),
            }
        }
        let mut out = ai.finish();
        out.extend(batch.finish());
        out
    }

    /// Events' JSON again as payloads of `lane`, shrunk to its budget where needed.
    pub(crate) fn reencode(
        &self,
        jsons: Vec<Vec<u8>>,
        lane: Lane,
        counters: &Counters,
    ) -> Vec<PosthogPayload> {
        let mut builder = Builder::new(&self.encoding, lane);
        let budget = self.encoding.limits(lane).event_budget();
        for json in jsons {
            let json = if size::fits(&json, budget) {
                json
            } else {
                let shrunk = size::shrink(&json, budget);
                if !size::fits(&shrunk, budget) {
                    add(&counters.oversize, 1);
                    continue;
                }
                add(&counters.shrunk, 1);
                shrunk
            };
            builder.push(&json);
        }
        builder.finish()
    }
}

fn insert_sample_rate(event: &mut Event, rate: f64) {
    let properties = &mut event.envelope_mut().properties;
    if !properties.contains_key(TRACE_SAMPLE_RATE) {
        properties.insert(TRACE_SAMPLE_RATE.into(), serde_json::Value::from(rate));
    }
}

/// The cost of `json` against a budget, for tests and the exporter.
pub(crate) fn cost(json: &[u8]) -> usize {
    size::encoded_cost(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Generation;
    use std::io::Read;

    fn encoding(gzip: bool, batch_bytes: usize) -> Encoding {
        let limits = Limits {
            event_bytes: 900_000,
            batch_bytes,
        };
        Encoding {
            gzip,
            batch_size: 100,
            batch: limits,
            ai: limits,
            sample_rate: None,
        }
    }

    fn events(n: usize, mut text: impl FnMut(usize) -> String) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut generation = Generation::new("gpt-4o-mini", "openai");
                generation.input = Some(vec![crate::types::Message::user(text(i))]);
                Event::from(generation)
            })
            .collect()
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    #[test]
    fn a_stitched_body_is_one_valid_gzip_member_with_a_fresh_sent_at() {
        for gzip in [true, false] {
            let encoder = Encoder {
                encoding: encoding(gzip, 2_000_000),
            };
            let counters = Counters::default();
            let payloads =
                encoder.encode(events(3, |i| format!("q{i}")), |_| Lane::Batch, &counters);
            assert_eq!(payloads.len(), 1);
            let prefix = Prefix::new("phc_k\"ey");
            let body = payloads[0].body(&prefix, SystemTime::now());
            let plain = if gzip { gunzip(&body) } else { body };
            let json: serde_json::Value = serde_json::from_slice(&plain).unwrap();
            assert_eq!(json["api_key"], "phc_k\"ey");
            assert_eq!(json["batch"].as_array().unwrap().len(), 3);
            assert!(humantime::parse_rfc3339(json["sent_at"].as_str().unwrap()).is_ok());
            let jsons = payloads[0].event_jsons().unwrap();
            assert_eq!(jsons.len(), 3);
            let first: serde_json::Value = serde_json::from_slice(&jsons[0]).unwrap();
            assert_eq!(first, json["batch"][0]);
        }
    }

    #[test]
    fn payloads_are_cut_by_compressed_size_and_survive_the_spool() {
        let encoder = Encoder {
            encoding: encoding(true, 64 * 1024),
        };
        let counters = Counters::default();
        // Incompressible text: about 20 KB per event.
        let mut seed = 0x1234_5678u64;
        let payloads = encoder.encode(
            events(20, |_| {
                (0..20_000)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        char::from(b'a' + (seed % 26) as u8)
                    })
                    .collect()
            }),
            |_| Lane::Batch,
            &counters,
        );
        assert!(payloads.len() >= 7, "{}", payloads.len());
        let prefix = Prefix::new("phc_key");
        let mut total = 0;
        for payload in &payloads {
            let body = payload.body(&prefix, SystemTime::now());
            assert!(body.len() <= 64 * 1024, "{}", body.len());
            total += payload.events();
            let back = PosthogPayload::from_spool(&payload.to_spool()).unwrap();
            assert_eq!(back.event_jsons(), payload.event_jsons());
        }
        assert_eq!(total, 20);
        let mut spool = payloads[0].to_spool();
        let last = spool.len() - 1;
        spool[last] ^= 0xff;
        assert!(PosthogPayload::from_spool(&spool).is_none());
    }
}
