//! A fake PostHog capture server on loopback.
//!
//! It records every request (headers, raw body, gunzipped body) and answers from a script:
//! each request takes the next scripted [`Answer`], and once the script is used up every
//! answer is `200 {"status":"Ok"}`. It can hang without answering, and it can be started late
//! on a reserved port to play a capture endpoint that refuses connections at first. It runs on
//! its own thread, so sync code (benchmarks) and async tests use it alike.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::http::{read_request, RawRequest};

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

    /// Starts on `addr`.
    pub fn start_on(addr: SocketAddr, script: Vec<Answer>, keep_bodies: bool) -> Self {
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            keep_bodies,
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

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let Some(RawRequest {
            method,
            path,
            headers,
            body,
        }) = read_request(&mut stream, &mut buffer).await
        else {
            return;
        };
        let answer = state.script.lock().unwrap().pop_front();
        let status = match &answer {
            Some(Answer::Hang) => None,
            Some(Answer::Status(status)) | Some(Answer::Full { status, .. }) => Some(*status),
            None => Some(200),
        };
        state
            .received_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let plain = gunzip_if_gzip(&body);
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
