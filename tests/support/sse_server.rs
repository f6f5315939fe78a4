//! A small HTTP/1.1 server that writes SSE events with delays between them.
//!
//! wiremock answers with whole bodies; streaming tests need a body written piece by piece, with
//! pauses, split at awkward places, or cut off. Each request is recorded (method, path, headers,
//! body) and answered with the next scripted [`Reply`] (the last one repeats), on a connection
//! that is closed afterwards. Listens on 127.0.0.1 only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::http;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    content_type: String,
    /// Each piece is written after its delay, as one HTTP chunk.
    pieces: Vec<(Duration, Vec<u8>)>,
    /// Close the connection without finishing the chunked body.
    cut: bool,
}

impl Reply {
    /// A 200 `text/event-stream` answer with no pieces yet.
    pub fn sse() -> Self {
        Self {
            status: 200,
            content_type: "text/event-stream".into(),
            pieces: Vec::new(),
            cut: false,
        }
    }

    /// An answer with another status and content type.
    pub fn with_status(status: u16, content_type: &str) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            ..Self::sse()
        }
    }

    /// Writes `bytes` after `delay`.
    pub fn piece(mut self, delay: Duration, bytes: impl AsRef<[u8]>) -> Self {
        self.pieces.push((delay, bytes.as_ref().to_vec()));
        self
    }

    /// Writes `bytes` right away.
    pub fn now(self, bytes: impl AsRef<[u8]>) -> Self {
        self.piece(Duration::ZERO, bytes)
    }

    /// Writes each `data:` payload as its own event, right away.
    pub fn data_events<'a>(mut self, datas: impl IntoIterator<Item = &'a str>) -> Self {
        for data in datas {
            self = self.now(format!("data: {data}\n\n"));
        }
        self
    }

    /// Writes the whole body in pieces of `size` bytes, so events split across reads.
    pub fn split_every(self, size: usize, body: &str) -> Self {
        let mut reply = self;
        for piece in body.as_bytes().chunks(size) {
            reply = reply.now(piece);
        }
        reply
    }

    /// Closes the connection after the last piece without ending the body: a broken stream.
    pub fn cut(mut self) -> Self {
        self.cut = true;
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, ...
    pub method: String,
    /// The path with its query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct SseServer {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Set when the client went away while the server was still writing.
    disconnects: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl SseServer {
    /// Starts a server answering requests with `replies` in order (the last one repeats).
    pub async fn start(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty(), "at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let disconnects = Arc::new(Mutex::new(0));
        let task = {
            let requests = Arc::clone(&requests);
            let disconnects = Arc::clone(&disconnects);
            tokio::spawn(async move {
                let mut served = 0usize;
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let reply = replies[served.min(replies.len() - 1)].clone();
                    served += 1;
                    let requests = Arc::clone(&requests);
                    let disconnects = Arc::clone(&disconnects);
                    tokio::spawn(serve(socket, reply, requests, disconnects));
                }
            })
        };
        Self {
            url,
            requests,
            disconnects,
            task,
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// How many answers the client abandoned while they were still being written.
    pub fn disconnects(&self) -> usize {
        *self.disconnects.lock().unwrap()
    }
}

impl Drop for SseServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut socket: TcpStream,
    reply: Reply,
    requests: Arc<Mutex<Vec<Recorded>>>,
    disconnects: Arc<Mutex<usize>>,
) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    requests.lock().unwrap().push(request);
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
        reply.status, reply.content_type
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for (delay, bytes) in &reply.pieces {
        if !delay.is_zero() {
            tokio::time::sleep(*delay).await;
        }
        let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
        chunk.extend_from_slice(bytes);
        chunk.extend_from_slice(b"\r\n");
        if socket.write_all(&chunk).await.is_err() || socket.flush().await.is_err() {
            *disconnects.lock().unwrap() += 1;
            return;
        }
    }
    if reply.cut {
        return;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let _ = socket.shutdown().await;
}

/// Reads the one request a connection carries.
async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let request = http::read_request(socket, &mut Vec::new()).await?;
    Some(Recorded {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
    })
}
