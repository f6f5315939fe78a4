//! URLs: checking a base URL, and showing any URL without its secrets.
//!
//! A URL can carry credentials in its user info (`http://user:KEY@host/v1`, which reqwest sends
//! as basic auth) and in its query (`?key=…`). Whatever an event, a log line, a `Debug` or an
//! error shows of a URL goes through [`display`] or [`sanitize`]: user info removed, every query
//! value replaced by `[redacted]`, the fragment dropped. Requests still go to the URL as given.

#[cfg(feature = "__http")]
use std::fmt;

#[cfg(feature = "__http")]
use reqwest::Url;

#[cfg(feature = "__http")]
use super::secret::Secret;
#[cfg(feature = "__http")]
use crate::{Error, Result};

#[cfg(feature = "__http")]
/// Whether this build can open `https` connections.
const HAS_TLS: bool = cfg!(any(feature = "rustls", feature = "native-tls"));

#[cfg(feature = "__http")]
/// A checked base URL: `http` or `https`, with a host and without query or fragment, kept as
/// given but for surrounding white space and trailing slashes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// What paths are appended to. It keeps any user info, so requests still carry it.
    text: String,
    /// `text` as safe to show.
    shown: String,
    https: bool,
}

#[cfg(feature = "__http")]
impl BaseUrl {
    /// Checks `raw`; `what` names it in the error (`"base url"`, `"posthog: host"`), which shows
    /// the URL through [`display`].
    ///
    /// # Errors
    /// [`Error::is_builder`] when `raw` is not an `http(s)` URL with a host, or carries a query
    /// or fragment.
    pub(crate) fn parse(raw: &str, what: &str) -> Result<Self> {
        let text = raw.trim().trim_end_matches('/');
        let invalid =
            |problem: &str| Error::builder(format!("{what} {:?} {problem}", display(text)));
        let url =
            Url::parse(text).map_err(|err| invalid(&format!("is not an http(s) URL ({err})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("is not an http(s) URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not carry a query or fragment"));
        }
        Ok(Self {
            text: text.to_owned(),
            shown: display(text),
            https: url.scheme() == "https",
        })
    }

    /// Checks that this build can reach the URL: `https` needs a TLS feature.
    ///
    /// # Errors
    /// [`Error::is_builder`] naming the `rustls` and `native-tls` features, for an `https` URL
    /// in a build without either; `what` names the URL as in [`parse`](BaseUrl::parse).
    pub(crate) fn check_tls(&self, what: &str) -> Result<()> {
        if HAS_TLS || !self.https {
            return Ok(());
        }
        Err(Error::builder(format!(
            "{what} {:?} is https, and this build has no TLS: enable the `rustls` or `native-tls` \
             feature of traced-llm, or use an http URL",
            self.shown
        )))
    }

    /// The URL as given, user info included: for requests only, never to show.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL as safe to show: what `$ai_base_url`, `Debug` and errors say.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The base URL with `path` appended and `query` pairs added.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the result is not a URL.
    pub(crate) fn join(&self, path: &str, query: &[(&str, &str)]) -> Result<Url> {
        let text = format!("{}{path}", self.text);
        let joined = if query.is_empty() {
            Url::parse(&text)
        } else {
            Url::parse_with_params(&text, query)
        };
        joined.map_err(|err| Error::builder(format!("invalid url {:?} ({err})", display(&text))))
    }

    /// The secrets in the user info, as written and percent-decoded: the password, or the user
    /// name when there is no password (`https://TOKEN@host`). Whoever sends errors that may
    /// echo them scrubs these.
    pub(crate) fn credentials(&self) -> Vec<Secret> {
        let Ok(url) = Url::parse(&self.text) else {
            return Vec::new();
        };
        let secret = match url.password() {
            Some(password) => password,
            None => url.username(),
        };
        if secret.is_empty() {
            return Vec::new();
        }
        let mut secrets = vec![Secret::new(secret)];
        if let Some(decoded) = percent_decoded(secret).filter(|decoded| decoded != secret) {
            secrets.push(Secret::new(decoded));
        }
        secrets
    }
}

#[cfg(feature = "__http")]
impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown, f)
    }
}

/// A URL as events show it: without user info, and with every query value replaced, since
/// both carry credentials (`http://user:key@host`, `?key=…`). Text that is not a URL passes
/// through unchanged; no parsing happens unless the text holds `@` or `?`.
pub(crate) fn display(url: &str) -> String {
    if !url.contains(['@', '?']) {
        return url.to_owned();
    }
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let mut shown = format!("{scheme}{host}{path}");
    if let Some(query) = query {
        let query = query.split('#').next().unwrap_or_default();
        shown.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                shown.push('&');
            }
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            shown.push_str(name);
            shown.push_str("=[redacted]");
        }
    }
    shown
}

#[cfg(feature = "__http")]
/// [`display`] applied in place to a parsed URL (reqwest's, inside its errors).
pub(crate) fn sanitize(url: &mut Url) {
    match Url::parse(&display(url.as_str())) {
        Ok(shown) => *url = shown,
        // `display` only removes parts, so this does not happen; drop what could be secret.
        Err(_) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
        }
    }
    url.set_fragment(None);
}

/// `%XX` escapes decoded; `None` when the result is not UTF-8.
#[cfg(feature = "__http")]
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(all(test, feature = "__http"))]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let url = BaseUrl::parse(" http://api.example.com/v1/ ", "base url").unwrap();
        assert_eq!(url.as_str(), "http://api.example.com/v1");
        assert_eq!(url.shown(), "http://api.example.com/v1");
        for bad in [
            "api.openai.com",
            "ftp://host",
            "not a url",
            "http://host/v1?x=1",
            "http://h#f",
        ] {
            assert!(
                BaseUrl::parse(bad, "base url").unwrap_err().is_builder(),
                "{bad}"
            );
        }
        let err = BaseUrl::parse("ftp://x", "posthog: host").unwrap_err();
        assert_eq!(
            err.message(),
            "posthog: host \"ftp://x\" is not an http(s) URL"
        );
    }

    #[test]
    fn user_info_works_for_requests_and_never_shows() {
        let url = BaseUrl::parse("http://user:s3cr%2Ft@127.0.0.1:8080/v1/", "base url").unwrap();
        assert_eq!(url.as_str(), "http://user:s3cr%2Ft@127.0.0.1:8080/v1");
        assert_eq!(url.shown(), "http://127.0.0.1:8080/v1");
        assert_eq!(format!("{url:?}"), "\"http://127.0.0.1:8080/v1\"");
        let joined = url.join("/chat/completions", &[]).unwrap();
        assert_eq!(joined.password(), Some("s3cr%2Ft"));
        let secrets: Vec<String> = url
            .credentials()
            .iter()
            .map(|secret| secret.expose().to_owned())
            .collect();
        assert_eq!(secrets, ["s3cr%2Ft", "s3cr/t"]);

        let token = BaseUrl::parse("http://TOKEN123@host", "base url").unwrap();
        assert_eq!(token.shown(), "http://host");
        assert_eq!(token.credentials()[0].expose(), "TOKEN123");
        assert!(BaseUrl::parse("http://host", "base url")
            .unwrap()
            .credentials()
            .is_empty());
    }

    #[test]
    fn a_refused_url_is_shown_without_its_secrets() {
        let err =
            BaseUrl::parse("https://u:PASS@h/v1?key=SECRET&flag#FRAG", "base url").unwrap_err();
        assert_eq!(
            err.message(),
            "base url \"https://h/v1?key=[redacted]&flag=[redacted]\" must not carry a query or \
             fragment"
        );
        let err = BaseUrl::parse("http://u:PASS@h:notaport/v1?key=SECRET", "base url").unwrap_err();
        let shown = err.to_string();
        assert!(
            !shown.contains("PASS") && !shown.contains("SECRET"),
            "{shown}"
        );
    }

    #[test]
    fn sanitize_edits_in_place() {
        let mut url = Url::parse("http://u:p@h/x?api-version=1&key=K#frag").unwrap();
        sanitize(&mut url);
        assert_eq!(
            url.as_str(),
            "http://h/x?api-version=[redacted]&key=[redacted]"
        );
    }

    #[test]
    fn https_needs_a_tls_feature() {
        let https = BaseUrl::parse("HTTPS://api.openai.com/v1", "base url").unwrap();
        let checked = https.check_tls("base url");
        if cfg!(any(feature = "rustls", feature = "native-tls")) {
            assert!(checked.is_ok());
        } else {
            let err = checked.unwrap_err();
            assert!(err.message().contains("`rustls` or `native-tls`"), "{err}");
        }
        let http = BaseUrl::parse("http://127.0.0.1:1/v1", "base url").unwrap();
        assert!(http.check_tls("base url").is_ok());
    }
}

#[cfg(test)]
mod display_tests {
    use super::display;

    #[test]
    fn display_strips_user_info_and_query_values() {
        assert_eq!(
            display("https://h/v1?key=abc"),
            "https://h/v1?key=[redacted]"
        );
        assert_eq!(
            display("http://a:b@h:9/x?k=v&z="),
            "http://h:9/x?k=[redacted]&z=[redacted]"
        );
        assert_eq!(display("http://a:b@h"), "http://h");
        assert_eq!(display("http://127.0.0.1:1/v1"), "http://127.0.0.1:1/v1");
        // Not URLs: everything up to the last `@` of the authority goes all the same.
        assert_eq!(display("http://u:p@ss@h:x/v1"), "http://h:x/v1");
        assert_eq!(display("u:p@h?t=1"), "h?t=[redacted]");
        assert_eq!(display("plain text"), "plain text");
    }
}
