//! Sign-in: a configured user list and a signed session cookie.
//!
//! This is an example, not an identity provider. It checks a name and password against the
//! list it was started with (compared in constant time), and hands out a cookie whose value is
//! signed with HMAC-SHA256, so it cannot be forged or altered without the key. It does not hash
//! or store passwords, lock accounts, limit sign-in attempts, rotate keys, revoke a session
//! before it expires (signing out only deletes the browser's cookie), set `Secure` (it serves
//! plain HTTP on loopback), or defend against CSRF beyond `SameSite=Strict` and JSON-only API
//! bodies.

mod routes;
mod session;
mod users;

pub(crate) use self::routes::{sign_in, sign_out, whoami, SignedIn};
pub use self::session::{SessionKey, SESSION_COOKIE};
pub use self::users::{User, Users};
