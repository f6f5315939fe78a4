//! OpenTelemetry SDK providers over the SDK's in-memory exporters, and readable views of what
//! they caught.

use std::collections::BTreeMap;

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Value as Json};
use traced_llm::otel::{OtelSink, OtelSinkBuilder, TracedIdGenerator};

/// A tracer provider that exports each span as it ends (no batching, so tests see it at once)
/// and a meter provider read on demand.
pub struct Otel {
    pub span_exporter: InMemorySpanExporter,
    pub metric_exporter: InMemoryMetricExporter,
    pub tracer_provider: SdkTracerProvider,
    pub meter_provider: SdkMeterProvider,
}

impl Otel {
    pub fn new() -> Self {
        let span_exporter = InMemorySpanExporter::default();
        let metric_exporter = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(span_exporter.clone())
            .with_id_generator(TracedIdGenerator::new())
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metric_exporter.clone()).build())
            .build();
        Self {
            span_exporter,
            metric_exporter,
            tracer_provider,
            meter_provider,
        }
    }

    /// A sink builder over these providers.
    pub fn builder(&self) -> OtelSinkBuilder {
        OtelSink::builder()
            .tracer_provider(&self.tracer_provider)
            .meter_provider(&self.meter_provider)
    }

    /// A sink over these providers, content off.
    pub fn sink(&self) -> OtelSink {
        self.builder().capture_content(false).build()
    }

    /// The spans exported so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        self.span_exporter.get_finished_spans().expect("spans")
    }

    /// The one span exported.
    pub fn span(&self) -> SpanData {
        let mut spans = self.spans();
        assert_eq!(spans.len(), 1, "one span: {spans:#?}");
        spans.remove(0)
    }

    /// Every data point recorded so far, as `(metric name, attributes, value)`.
    pub fn points(&self) -> Vec<Point> {
        self.meter_provider.force_flush().expect("metrics flushed");
        let collected = self
            .metric_exporter
            .get_finished_metrics()
            .expect("metrics");
        points(collected.last().expect("one collection"))
    }
}

/// One data point: a sum's value, or a histogram's count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub unit: String,
    pub attributes: Json,
    /// A counter's total, or a histogram's sum.
    pub value: f64,
    /// A histogram's count; 0 for counters.
    pub count: u64,
    /// A histogram's bucket bounds; empty for counters.
    pub bounds: Vec<f64>,
}

fn points(metrics: &ResourceMetrics) -> Vec<Point> {
    let mut out = Vec::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let mut push = |attributes: Json, value: f64, count: u64, bounds: Vec<f64>| {
                out.push(Point {
                    name: metric.name().to_owned(),
                    unit: metric.unit().to_owned(),
                    attributes,
                    value,
                    count,
                    bounds,
                })
            };
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                    for point in histogram.data_points() {
                        push(
                            attributes(point.attributes()),
                            point.sum(),
                            point.count(),
                            point.bounds().collect(),
                        );
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(histogram)) => {
                    for point in histogram.data_points() {
                        push(
                            attributes(point.attributes()),
                            point.sum() as f64,
                            point.count(),
                            point.bounds().collect(),
                        );
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    for point in sum.data_points() {
                        push(
                            attributes(point.attributes()),
                            point.value() as f64,
                            0,
                            Vec::new(),
                        );
                    }
                }
                other => panic!("unexpected metric data {other:?}"),
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.name, a.attributes.to_string()).cmp(&(&b.name, b.attributes.to_string()))
    });
    out
}

/// Attributes as a JSON object, keys sorted, for exact comparisons with `json!`.
pub fn attributes<'a>(attributes: impl IntoIterator<Item = &'a KeyValue>) -> Json {
    let map: BTreeMap<String, Json> = attributes
        .into_iter()
        .map(|kv| (kv.key.as_str().to_owned(), value(&kv.value)))
        .collect();
    json!(map)
}

/// A span's attributes as a JSON object.
pub fn span_attributes(span: &SpanData) -> Json {
    attributes(&span.attributes)
}

fn value(value: &Value) -> Json {
    match value {
        Value::Bool(flag) => json!(flag),
        Value::I64(int) => json!(int),
        Value::F64(float) => json!(float),
        Value::String(text) => json!(text.as_str()),
        Value::Array(Array::String(items)) => {
            json!(items.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        }
        Value::Array(Array::I64(items)) => json!(items),
        Value::Array(Array::F64(items)) => json!(items),
        Value::Array(Array::Bool(items)) => json!(items),
        other => json!(format!("{other:?}")),
    }
}
