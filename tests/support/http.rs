//! Reading HTTP/1.1 requests off a loopback socket, shared by the fake servers.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// `POST`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes (`content-length` of them).
    pub body: Vec<u8>,
}

/// Reads one request: the head up to the blank line, then `content-length` bytes of body.
/// `buffer` keeps what was read past this request, for the next one on a kept-alive
/// connection. `None` when the connection closes first.
pub async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<RawRequest> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at;
        }
        read_more(stream, buffer, 16 * 1024).await?;
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
    let body_end = head_end + 4 + length;
    while buffer.len() < body_end {
        read_more(stream, buffer, (body_end - buffer.len()).min(256 * 1024)).await?;
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

/// Appends up to `at_most` bytes; `None` when the connection closed.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>, at_most: usize) -> Option<()> {
    let mut chunk = vec![0u8; at_most];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..n]);
    Some(())
}
