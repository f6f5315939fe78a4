//! A fake PostHog capture server on loopback.
//!
//! It records every request (headers, raw body, gunzipped body) and answers from a script:
//! each request takes the next scripted [`Answer`], and once the script is used up every
//! answer is `200 {"status":"Ok"}`. It can hang without answering, and it can be started late
//! on a reserved port to play a capture endpoint that refuses connections at first. It runs on
//! its own thread, so sync code (benchmarks) and async tests use it alike.
//!
//! Faults beyond the script are [`Rule`]s, checked before it: a 400 for any batch holding a
//! poisoned uuid, a 413 and a reset for a body over a size (answered before the body is read,
//! as PostHog's capture does), a 404 on a route. [`CaptureServer::set_hanging`] makes every
//! new request hang until it is switched off, as a server that stalls and then recovers.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::http::RawRequest;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The status with a small plain-text body.
    Status(u16),
    /// The status, the body, and extra headers.
    Full {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Read the request, never answer, keep the connection open.
    Hang,
}

impl Answer {
    /// `429` with a `Retry-After` header.
    pub fn retry_after(status: u16, value: &str) -> Self {
        Answer::Full {
            status,
            body: r#"{"status":429,"code":"rate_limited","error":"slow down"}"#.into(),
            headers: vec![("Retry-After".into(), value.into())],
        }
    }
}

/// A fault that applies to every request it matches, before the script.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `400` for any request whose (gunzipped) body holds this text, e.g. a poisoned uuid.
    RejectContaining(String),
    /// For a body larger than this many bytes as sent: `413` at once, without reading the
    /// body, then the connection is closed (the client usually sees a reset).
    ResetAbove(usize),
    /// `404` with an empty body on this path.
    NotFound(String),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub raw_body: Vec<u8>,
    /// The body gunzipped when it starts with gzip's magic bytes, else as sent.
    pub body: Vec<u8>,
    /// The status answered; `None` when the server hung.
    pub status: Option<u16>,
    /// When the request was complete.
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The events of the batch.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.json()["batch"].as_array().cloned().unwrap_or_default()
    }

    pub fn delivered(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Answer>>,
    requests: Mutex<Vec<Recorded>>,
    /// Events in answered-200 requests, counted without keeping bodies (benchmarks).
    delivered_events: AtomicU64,
    received_bytes: AtomicU64,
    keep_bodies: bool,
    rules: Vec<Rule>,
    hanging: AtomicBool,
    /// Requests refused by [`Rule::ResetAbove`].
    resets: AtomicU64,
}

/// The running server; stops when dropped.
pub struct CaptureServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl CaptureServer {
    /// Starts on a free loopback port with `script`.
    pub fn start(script: Vec<Answer>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script, true)
    }

    /// Starts on a free port and only counts events and bytes (for benchmarks: no bodies kept).
    pub fn start_counting(script: Vec<Answer>) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script, false)
    }

    /// A loopback port nobody listens on now (connections are refused), for
    /// [`CaptureServer::start_on`] later.
    pub fn reserve_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    /// Starts on a free port with fault rules.
    pub fn start_with_rules(script: Vec<Answer>, rules: Vec<Rule>) -> Self {
        Self::start_full("127.0.0.1:0".parse().unwrap(), script, true, rules)
    }

    /// Starts on `addr`.
    pub fn start_on(addr: SocketAddr, script: Vec<Answer>, keep_bodies: bool) -> Self {
        Self::start_full(addr, script, keep_bodies, Vec::new())
    }

    /// Starts on `addr` with fault rules.
    pub fn start_full(
        addr: SocketAddr,
        script: Vec<Answer>,
        keep_bodies: bool,
        rules: Vec<Rule>,
    ) -> Self {
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            keep_bodies,
            rules,
            ..State::default()
        });
        let listener = std::net::TcpListener::bind(addr).expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&state);
        std::thread::Builder::new()
            .name("fake-capture".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(serve(stream, Arc::clone(&served)));
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stopped => {}
                    }
                });
                // Hanging connections are simply abandoned.
                runtime.shutdown_background();
            })
            .unwrap();
        Self {
            addr,
            state,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// While on, every new request is read and never answered (those already hanging stay so).
    pub fn set_hanging(&self, on: bool) {
        self.state.hanging.store(on, Ordering::SeqCst);
    }

    /// Requests answered 413-and-reset by [`Rule::ResetAbove`].
    pub fn resets(&self) -> u64 {
        self.state.resets.load(Ordering::Relaxed)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The events of every request answered with a 2xx, in arrival order.
    pub fn delivered_events(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|request| request.delivered())
            .flat_map(Recorded::events)
            .collect()
    }

    /// Events in 2xx-answered requests (also counted when bodies are not kept).
    pub fn delivered_count(&self) -> u64 {
        self.state.delivered_events.load(Ordering::Relaxed)
    }

    /// Request body bytes received, as sent.
    pub fn received_bytes(&self) -> u64 {
        self.state.received_bytes.load(Ordering::Relaxed)
    }

    /// Waits (blocking) until at least `n` requests arrived or `timeout` passed.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads one request, or answers 413 and gives up on the connection when a
/// [`Rule::ResetAbove`] refuses its size before the body is read.
async fn read_or_refuse(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    state: &State,
) -> Option<RawRequest> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
        read_more(stream, buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let limit = state.rules.iter().find_map(|rule| match rule {
        Rule::ResetAbove(limit) => Some(*limit),
        _ => None,
    });
    if limit.is_some_and(|limit| length > limit) {
        state.resets.fetch_add(1, Ordering::Relaxed);
        let text = "Failed to buffer the request body: length limit exceeded";
        let response = format!(
            "HTTP/1.1 413 Payload Too Large\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        // Closing with the body unread resets the connection under the client.
        return None;
    }
    let body_end = head_end + 4 + length;
    while buffer.len() < body_end {
        read_more(stream, buffer).await?;
    }
    let body = buffer[head_end + 4..body_end].to_vec();
    buffer.drain(..body_end);
    Some(RawRequest {
        method,
        path,
        headers,
        body,
    })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..n]);
    Some(())
}

/// The answer a rule gives this request, if any.
fn rule_answer(state: &State, path: &str, plain: &[u8]) -> Option<Answer> {
    state.rules.iter().find_map(|rule| match rule {
        Rule::NotFound(route) if route == path => Some(Answer::Full {
            status: 404,
            body: String::new(),
            headers: Vec::new(),
        }),
        Rule::RejectContaining(text)
            if plain
                .windows(text.len())
                .any(|window| window == text.as_bytes()) =>
        {
            Some(Answer::Full {
                status: 400,
                body: "maximum event size exceeded".into(),
                headers: Vec::new(),
            })
        }
        _ => None,
    })
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let Some(RawRequest {
            method,
            path,
            headers,
            body,
        }) = read_or_refuse(&mut stream, &mut buffer, &state).await
        else {
            return;
        };
        let plain = gunzip_if_gzip(&body);
        let answer = if state.hanging.load(Ordering::SeqCst) {
            Some(Answer::Hang)
        } else {
            match rule_answer(&state, &path, &plain) {
                Some(answer) => Some(answer),
                None => state.script.lock().unwrap().pop_front(),
            }
        };
        let status = match &answer {
            Some(Answer::Hang) => None,
            Some(Answer::Status(status)) | Some(Answer::Full { status, .. }) => Some(*status),
            None => Some(200),
        };
        state
            .received_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        if matches!(status, Some(200..=299)) {
            state
                .delivered_events
                .fetch_add(count_events(&plain), Ordering::Relaxed);
        }
        if state.keep_bodies {
            state.requests.lock().unwrap().push(Recorded {
                method,
                path,
                headers,
                raw_body: body,
                body: plain,
                status,
                at: Instant::now(),
            });
        }
        let (status, text, extra) = match answer {
            Some(Answer::Hang) => {
                std::future::pending::<()>().await;
                return;
            }
            None => (200, r#"{"status":"Ok"}"#.to_owned(), Vec::new()),
            Some(Answer::Status(status)) => (status, format!("status {status}"), Vec::new()),
            Some(Answer::Full {
                status,
                body,
                headers,
            }) => (status, body, headers),
        };
        let mut response = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            text.len()
        );
        for (name, value) in extra {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&text);
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

pub fn gunzip_if_gzip(body: &[u8]) -> Vec<u8> {
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::with_capacity(body.len() * 8);
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .expect("valid gzip body");
        plain
    } else {
        body.to_vec()
    }
}

/// Counts `"uuid":` keys: one per event in the crate's batches.
fn count_events(json: &[u8]) -> u64 {
    std::str::from_utf8(json).map_or(0, |text| text.matches("\"uuid\":").count() as u64)
}
