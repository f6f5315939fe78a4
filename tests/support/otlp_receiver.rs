//! A fake OTLP/HTTP collector on loopback: it decodes every export it receives, protobuf or
//! JSON, with the `opentelemetry-proto` types, and answers `200` with an empty response.
//! It runs on its own thread, so blocking exporters and async tests use it alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::http::read_request;

/// One export as it arrived.
#[derive(Debug, Clone)]
pub struct Export {
    pub path: String,
    pub content_type: String,
    pub authorization: Option<String>,
}

#[derive(Debug, Default)]
struct Received {
    exports: Vec<Export>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    errors: Vec<String>,
}

/// The running receiver; it stops with the test process.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1` on a free port.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = Arc::clone(&received);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, Arc::clone(&shared)));
                }
            });
        });
        Self { addr, received }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn exports(&self) -> Vec<Export> {
        self.received.lock().unwrap().exports.clone()
    }

    /// Every span received, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().unwrap();
        received
            .traces
            .iter()
            .flat_map(|request| &request.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| scope.spans.clone())
            .collect()
    }

    /// Every metric received, in arrival order (a metric per export that carried it).
    pub fn metrics(&self) -> Vec<Metric> {
        let received = self.received.lock().unwrap();
        received
            .metrics
            .iter()
            .flat_map(|request| &request.resource_metrics)
            .flat_map(|resource| &resource.scope_metrics)
            .flat_map(|scope| scope.metrics.clone())
            .collect()
    }

    /// Bodies that did not decode.
    pub fn errors(&self) -> Vec<String> {
        self.received.lock().unwrap().errors.clone()
    }

    /// Waits until `ready` holds, or `timeout` passed; true when it holds.
    pub fn wait_until(&self, timeout: Duration, ready: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !ready(self) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

async fn serve(mut stream: TcpStream, received: Arc<Mutex<Received>>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let content_type = header("content-type").unwrap_or_default();
        let json = content_type.starts_with("application/json");
        {
            let mut received = received.lock().unwrap();
            received.exports.push(Export {
                path: request.path.clone(),
                content_type: content_type.clone(),
                authorization: header("authorization"),
            });
            let outcome = match request.path.as_str() {
                "/v1/traces" => decode::<ExportTraceServiceRequest>(&request.body, json)
                    .map(|decoded| received.traces.push(decoded)),
                "/v1/metrics" => decode::<ExportMetricsServiceRequest>(&request.body, json)
                    .map(|decoded| received.metrics.push(decoded)),
                other => Err(format!("unexpected path {other}")),
            };
            if let Err(error) = outcome {
                received.errors.push(error);
            }
        }
        let (kind, body): (&str, &[u8]) = if json {
            ("application/json", b"{}")
        } else {
            ("application/x-protobuf", b"")
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(body).await.is_err()
        {
            return;
        }
    }
}

fn decode<T>(body: &[u8], json: bool) -> Result<T, String>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    if json {
        serde_json::from_slice(body).map_err(|error| format!("json: {error}"))
    } else {
        T::decode(body).map_err(|error| format!("protobuf: {error}"))
    }
}

/// An attribute's value, as JSON, for assertions.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<serde_json::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_json)
}

fn any_value_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::json;
    match &value.value {
        Some(any_value::Value::StringValue(text)) => json!(text),
        Some(any_value::Value::BoolValue(flag)) => json!(flag),
        Some(any_value::Value::IntValue(int)) => json!(int),
        Some(any_value::Value::DoubleValue(float)) => json!(float),
        Some(any_value::Value::ArrayValue(array)) => {
            json!(array.values.iter().map(any_value_json).collect::<Vec<_>>())
        }
        other => json!(format!("{other:?}")),
    }
}
