//! The durable spool: payloads that could not be delivered in time, one file each, for the
//! next sink started with the same directory.
//!
//! - A file is written under a temporary name and renamed, so a crash leaves either a whole
//!   file or a temporary one, which the next sink removes and counts as corrupt. Files are not
//!   synced one by one (that would cost shutdown its deadline): they survive the process, and
//!   the operating system writes them out.
//! - Each file is `MAGIC`, the creation time (Unix ms, u64 LE), the event count (u32 LE), the
//!   payload's length (u32 LE), the payload, and a CRC-32 of everything before it. A file that
//!   does not check out is removed and counted, never fatal.
//! - Names sort by creation time, so files are sent oldest first.
//! - The directory holds a lock file, locked for the sink's life: a second process gets a
//!   clear error instead of sending the same files twice.
//! - The spool is bounded in bytes; when a new file would not fit, the oldest go first, each
//!   counted as dropped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"TLLMSPL1";
const HEADER: usize = 8 + 8 + 4 + 4;
const EXTENSION: &str = "batch";
const TEMPORARY: &str = "tmp";
/// The name of the lock file.
pub(crate) const LOCK_FILE: &str = "spool.lock";

/// One file of the spool.
#[derive(Debug, Clone)]
pub(crate) struct SpoolFile {
    path: PathBuf,
    pub(crate) bytes: u64,
}

/// A payload read back.
pub(crate) struct Loaded {
    pub(crate) payload: Vec<u8>,
    pub(crate) events: usize,
    pub(crate) created: SystemTime,
}

/// An open spool directory, locked by this process.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    files: VecDeque<SpoolFile>,
    bytes: u64,
    next: u64,
    _lock: File,
}

/// Why a spool could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Another process holds the lock.
    Locked,
    Io(io::Error),
}

impl Spool {
    /// Opens (creating it if needed) and locks `dir`, and lists the files there. Returns the
    /// number of corrupt or partial files it removed.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<(Self, u64), OpenError> {
        fs::create_dir_all(dir).map_err(OpenError::Io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(OpenError::Io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked),
            Err(fs::TryLockError::Error(err)) => return Err(OpenError::Io(err)),
        }
        let mut corrupt = 0;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(OpenError::Io)? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            match path.extension().and_then(|ext| ext.to_str()) {
                Some(EXTENSION) => {}
                Some(TEMPORARY) => {
                    // Half-written by a process that died.
                    let _ = fs::remove_file(&path);
                    corrupt += 1;
                    continue;
                }
                _ => continue,
            }
            match read_header(&path) {
                Some(bytes) => files.push(SpoolFile { path, bytes }),
                None => {
                    let _ = fs::remove_file(&path);
                    corrupt += 1;
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = files.iter().map(|file| file.bytes).sum();
        Ok((
            Self {
                dir: dir.to_owned(),
                max_bytes,
                files: files.into(),
                bytes,
                next: 0,
                _lock: lock,
            },
            corrupt,
        ))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// The oldest file, taken off the list; `Err` when it is corrupt (it is then removed).
    pub(crate) fn pop(&mut self) -> Option<(SpoolFile, Result<Loaded, ()>)> {
        let file = self.files.pop_front()?;
        self.bytes -= file.bytes;
        let loaded = fs::read(&file.path).ok().and_then(|bytes| parse(&bytes));
        if loaded.is_none() {
            let _ = fs::remove_file(&file.path);
        }
        Some((file.clone(), loaded.ok_or(())))
    }

    /// Puts a popped file back at the front (its payload was not delivered).
    pub(crate) fn unpop(&mut self, file: SpoolFile) {
        self.bytes += file.bytes;
        self.files.push_front(file);
    }

    /// Removes a delivered (or finally dropped) file.
    pub(crate) fn remove(&mut self, file: &SpoolFile) {
        let _ = fs::remove_file(&file.path);
    }

    /// Writes a payload. Returns the events of the older files removed to make room, or
    /// `Err` when it cannot be written at all (too large for the spool, or an I/O error).
    pub(crate) fn write(
        &mut self,
        payload: &[u8],
        events: usize,
        created: SystemTime,
        mut evicted: impl FnMut(u64),
    ) -> io::Result<()> {
        let total = (HEADER + payload.len() + 4) as u64;
        if total > self.max_bytes {
            return Err(io::Error::other("larger than the spool"));
        }
        while self.bytes + total > self.max_bytes {
            let Some(old) = self.files.pop_front() else {
                break;
            };
            self.bytes -= old.bytes;
            let events = fs::read(&old.path)
                .ok()
                .and_then(|bytes| parse(&bytes))
                .map_or(0, |loaded| loaded.events as u64);
            let _ = fs::remove_file(&old.path);
            evicted(events);
        }
        let millis = created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        self.next += 1;
        let stem = format!("{millis:013}-{:08x}-{:010}", std::process::id(), self.next);
        let mut bytes = Vec::with_capacity(total as usize);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&millis.to_le_bytes());
        bytes.extend_from_slice(&(events as u32).to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
        let crc = crc32(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let temporary = self.dir.join(format!("{stem}.{TEMPORARY}"));
        let path = self.dir.join(format!("{stem}.{EXTENSION}"));
        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            fs::rename(&temporary, &path)
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&temporary);
            return Err(err);
        }
        self.bytes += total;
        // Keep the list sorted: a file written now is the newest.
        self.files.push_back(SpoolFile { path, bytes: total });
        Ok(())
    }
}

/// The size of a spool file, if its header is one.
fn read_header(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header).ok()?;
    if &header[..8] != MAGIC {
        return None;
    }
    let length = u32::from_le_bytes(header[20..24].try_into().ok()?) as u64;
    (size == HEADER as u64 + length + 4).then_some(size)
}

fn parse(bytes: &[u8]) -> Option<Loaded> {
    if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let millis = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let events = u32::from_le_bytes(body[16..20].try_into().ok()?) as usize;
    let length = u32::from_le_bytes(body[20..24].try_into().ok()?) as usize;
    let payload = body.get(HEADER..)?;
    if payload.len() != length {
        return None;
    }
    Some(Loaded {
        payload: payload.to_vec(),
        events,
        created: UNIX_EPOCH + Duration::from_millis(millis),
    })
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "traced-llm-spool-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_round_trip_oldest_first_and_corrupt_ones_are_skipped() {
        let dir = temp_dir("roundtrip");
        let (mut spool, corrupt) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(corrupt, 0);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        spool.write(b"first", 3, t0, |_| {}).unwrap();
        spool
            .write(b"second", 4, t0 + Duration::from_secs(1), |_| {})
            .unwrap();
        drop(spool);
        fs::write(
            dir.join("0000000000001-garbage.batch"),
            b"TLLMSPL1 not really",
        )
        .unwrap();
        fs::write(dir.join("0000000000002-partial.tmp"), b"TLLMSPL1").unwrap();

        let (mut spool, corrupt) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((corrupt, spool.len()), (2, 2));
        let (file, loaded) = spool.pop().unwrap();
        let loaded = loaded.ok().unwrap();
        assert_eq!(
            (loaded.payload.as_slice(), loaded.events),
            (&b"first"[..], 3)
        );
        assert_eq!(loaded.created, t0);
        spool.remove(&file);
        let (_, loaded) = spool.pop().unwrap();
        assert_eq!(loaded.ok().unwrap().payload, b"second");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_owner_is_refused_and_the_oldest_make_room() {
        let dir = temp_dir("lock");
        let (mut spool, _) = Spool::open(&dir, 200).unwrap();
        assert!(matches!(Spool::open(&dir, 200), Err(OpenError::Locked)));
        let now = SystemTime::now();
        let mut evicted = 0;
        for _ in 0..4 {
            spool
                .write(&[7u8; 50], 5, now, |events| evicted += events)
                .unwrap();
        }
        assert_eq!((spool.len(), evicted), (2, 10));
        assert!(spool.write(&[0u8; 500], 1, now, |_| {}).is_err());
        drop(spool);
        assert!(Spool::open(&dir, 200).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
