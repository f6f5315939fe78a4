//! The session cookie: `v1.<session id>.<username>.<issued, unix seconds>.<HMAC-SHA256 hex>`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "chat_session";

const VERSION: &str = "v1";

/// The key that signs session cookies. `Debug` never shows it.
#[derive(Clone)]
pub struct SessionKey {
    key: [u8; 32],
}

impl SessionKey {
    /// A fresh key from the operating system's random source: sessions end with the process.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source works");
        Self { key }
    }

    /// A key derived from `secret` (SHA-256), so sessions survive a restart.
    ///
    /// # Errors
    /// [`ConfigError`] for a secret shorter than 16 bytes.
    pub fn from_secret(secret: &str) -> Result<Self, ConfigError> {
        if secret.len() < 16 {
            return Err(ConfigError::new(
                "SESSION_SECRET must be at least 16 bytes long",
            ));
        }
        Ok(Self {
            key: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    /// A signed cookie value for a new session of `username`, issued at `now`.
    pub(crate) fn issue(&self, session_id: &str, username: &str, now: SystemTime) -> String {
        let payload = format!("{VERSION}.{session_id}.{username}.{}", unix_seconds(now));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The session id and username of a cookie this key signed, issued at most `max_age`
    /// before `now`. The signature is checked in constant time.
    pub(crate) fn verify<'a>(
        &self,
        cookie: &'a str,
        now: SystemTime,
        max_age: Duration,
    ) -> Option<(&'a str, &'a str)> {
        let (payload, signature) = cookie.rsplit_once('.')?;
        let signature = unhex(signature)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let mut parts = payload.split('.');
        let (version, session_id, username, issued) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != VERSION || parts.next().is_some() {
            return None;
        }
        let issued: u64 = issued.parse().ok()?;
        let age = unix_seconds(now).checked_sub(issued)?;
        (age <= max_age.as_secs()).then_some((session_id, username))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_signed_cookie_verifies_and_an_altered_one_does_not() {
        let key = SessionKey::from_secret("sixteen bytes at least").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cookie = key.issue("s1", "alice", now);
        assert!(cookie.starts_with("v1.s1.alice.1800000000."), "{cookie}");
        assert_eq!(key.verify(&cookie, now, DAY), Some(("s1", "alice")));

        let forged = cookie.replace(".alice.", ".bob.");
        assert_eq!(key.verify(&forged, now, DAY), None);
        let other_key = SessionKey::random();
        assert_eq!(other_key.verify(&cookie, now, DAY), None);
        assert_eq!(key.verify(&cookie, now + DAY * 2, DAY), None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(
            format!(
                "{:?}",
                SessionKey::from_secret("a secret of 16 bytes").unwrap()
            ),
            "SessionKey([redacted])"
        );
    }
}
