//! The people who may sign in.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ConfigError;

/// A person who may sign in. The password stays inside; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The distinct id their events carry: `user_<username>`.
    pub id: String,
    /// The name they sign in with.
    pub username: String,
    /// SHA-256 of the password, so comparisons take the same time whatever its length.
    password_digest: [u8; 32],
}

impl User {
    /// `username` with `password`; the distinct id is `user_<username>`.
    pub fn new(username: impl Into<String>, password: &str) -> Self {
        let username = username.into();
        Self {
            id: format!("user_{username}"),
            username,
            password_digest: digest(password),
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The configured user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    users: Vec<User>,
}

/// The users the service starts with when `CHAT_USERS` is unset: documented in the README, so
/// only fit for a demo on loopback.
const DEMO_USERS: &str = "alice:wonderland,bob:builder";

impl Users {
    /// The demo users, `alice` (password `wonderland`) and `bob` (password `builder`).
    pub fn demo() -> Self {
        Self::parse(DEMO_USERS).expect("the demo users parse")
    }

    /// Reads `name:password,name:password`. A name is 1 to 32 letters, digits, `_` or `-`; a
    /// password is everything after the first `:` up to the next `,`, and may not be empty.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad entry by its position, never its password.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut users: Vec<User> = Vec::new();
        for (index, entry) in list.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            let Some((name, password)) = entry.split_once(':') else {
                return Err(ConfigError::new(format!(
                    "CHAT_USERS entry {position} is not name:password"
                )));
            };
            let valid_name = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(ConfigError::new(format!(
                    "CHAT_USERS entry {position}: a name is 1 to 32 letters, digits, _ or -"
                )));
            }
            if password.is_empty() {
                return Err(ConfigError::new(format!(
                    "CHAT_USERS entry {position} ({name}) has an empty password"
                )));
            }
            if users.iter().any(|user| user.username == name) {
                return Err(ConfigError::new(format!("CHAT_USERS names {name} twice")));
            }
            users.push(User::new(name, password));
        }
        Ok(Self { users })
    }

    /// The user named `username` when `password` is theirs. Every password is compared in
    /// constant time, and an unknown name costs a comparison too.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<&User> {
        let given = digest(password);
        let mut found = None;
        for user in &self.users {
            let name_matches = user.username == username;
            let password_matches: bool = user.password_digest.ct_eq(&given).into();
            if name_matches && password_matches {
                found = Some(user);
            }
        }
        found
    }

    /// The user named `username`.
    pub fn get(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|user| user.username == username)
    }

    /// The names, in configured order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|user| user.username.as_str())
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_password_signs_in_and_a_wrong_one_does_not() {
        let users = Users::parse("alice:wonderland, bob:builder").unwrap();
        assert_eq!(
            users.authenticate("alice", "wonderland").map(|u| &u.id[..]),
            Some("user_alice")
        );
        assert!(users.authenticate("alice", "builder").is_none());
        assert!(users.authenticate("carol", "wonderland").is_none());
    }

    #[test]
    fn a_bad_list_names_the_entry_but_not_the_password() {
        let err = Users::parse("alice:wonderland,b@d:hunter2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CHAT_USERS entry 2: a name is 1 to 32 letters, digits, _ or -"
        );
        let err = Users::parse("alice:wonderland,hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_never_shows_a_password() {
        let users = Users::parse("alice:wonderland").unwrap();
        let debug = format!("{users:?}");
        assert!(!debug.contains("wonderland"), "{debug}");
        assert!(debug.contains("alice"), "{debug}");
    }
}
