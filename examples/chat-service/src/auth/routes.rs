//! `POST`, `GET` and `DELETE /api/session`, and the extractor every API route starts with.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use traced_llm::monitor::Clock;

use super::session::SESSION_COOKIE;
use super::users::User;
use crate::state::{error_response, AppState};

/// A request from a signed-in user; any other gets 401.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    /// Who.
    pub(crate) user: User,
    /// Their session (`$ai_session_id` on their calls).
    pub(crate) session_id: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let refused = || error_response(StatusCode::UNAUTHORIZED, "Please sign in first.");
        let cookie = session_cookie(&parts.headers).ok_or_else(refused)?;
        let (session_id, username) = state
            .session_key
            .verify(cookie, state.clock.wall(), state.session_max_age)
            .ok_or_else(refused)?;
        let user = state.users.get(username).ok_or_else(refused)?;
        Ok(SignedIn {
            user: user.clone(),
            session_id: session_id.to_owned(),
        })
    }
}

/// The value of the session cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// What the page sends to sign in. `Debug` never shows the password.
#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// Who is signed in.
#[derive(Debug, Serialize)]
pub(crate) struct Me {
    username: String,
}

/// `POST /api/session`: checks the credentials and sets the session cookie.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    Json(credentials): Json<Credentials>,
) -> Response {
    let Some(user) = state
        .users
        .authenticate(credentials.username.trim(), &credentials.password)
    else {
        tracing::info!("sign-in refused");
        return error_response(StatusCode::UNAUTHORIZED, "Wrong username or password.");
    };
    let session_id = uuid::Uuid::new_v4().simple().to_string();
    let value = state
        .session_key
        .issue(&session_id, &user.username, state.clock.wall());
    let cookie = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        state.session_max_age.as_secs()
    );
    tracing::info!(user = %user.username, "signed in");
    (
        [(SET_COOKIE, cookie)],
        Json(Me {
            username: user.username.clone(),
        }),
    )
        .into_response()
}

/// `GET /api/session`: who the cookie belongs to (401 without a valid one).
pub(crate) async fn whoami(signed_in: SignedIn) -> Json<Me> {
    Json(Me {
        username: signed_in.user.username,
    })
}

/// `DELETE /api/session`: deletes the cookie in the browser.
pub(crate) async fn sign_out() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response()
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
