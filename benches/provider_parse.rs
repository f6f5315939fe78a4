//! What our stream parsing costs per chunk: 50-chunk OpenAI and Gemini streams and 50-event
//! Anthropic and Responses streams, parsed from memory through the same path the providers use
//! (SSE framing, JSON, neutral events). Targets: at most 2 µs per chunk for OpenAI and
//! Anthropic, 1.5 µs for Gemini and Responses.
//!
//! And what encoding a request body costs: a 2-message and a 20-message streaming request,
//! serialized to the bytes each provider sends.
//!
//! `cargo bench --bench provider_parse` prints the median of several samples, in ns per chunk,
//! for bytes arriving one event per read and in 1 KiB reads, then in µs per request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use serde_json::json;
use traced_llm::provider::__bench::{
    anthropic_request_body, anthropic_stream, gemini_stream, openai_request_body, openai_stream,
    responses_stream,
};
use traced_llm::types::{Tool, ToolCall};
use traced_llm::{ChatRequest, ChatStream, Message};

const CHUNKS: usize = 50;
const SAMPLES: usize = 15;
const SAMPLE_TIME: Duration = Duration::from_millis(300);

/// 50 chunks as OpenAI sends them: a role chunk, 47 text chunks, the finish chunk and the
/// usage-only chunk, then `[DONE]`.
fn openai_body() -> Vec<String> {
    let head = r#""id":"chatcmpl-AbCdEf0123456789","object":"chat.completion.chunk","created":1732000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1""#;
    let mut events = vec![format!(
        r#"data: {{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
    )];
    for n in 0..CHUNKS - 3 {
        events.push(format!(
            r#"data: {{{head},"choices":[{{"index":0,"delta":{{"content":" word{n} and"}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ));
    }
    events.push(format!(
        r#"data: {{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}"#
    ));
    events.push(format!(
        r#"data: {{{head},"choices":[],"usage":{{"prompt_tokens":1200,"completion_tokens":96,"total_tokens":1296,"prompt_tokens_details":{{"cached_tokens":1024,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#
    ));
    events.push("data: [DONE]".to_owned());
    events.into_iter().map(|event| event + "\n\n").collect()
}

/// 50 events as Anthropic sends them: `message_start`, a text block of 45 deltas,
/// `message_delta` and `message_stop`.
fn anthropic_body() -> Vec<String> {
    let mut events = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01AbCdEf0123456789","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":1}}}"#
            .to_owned(),
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
            .to_owned(),
    ];
    for n in 0..CHUNKS - 5 {
        events.push(format!(
            r#"event: content_block_delta
data: {{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":" word{n} and"}}}}"#
        ));
    }
    events.push(
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}"#
            .to_owned(),
    );
    events.push(
        r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":96}}"#
            .to_owned(),
    );
    events.push(
        r#"event: message_stop
data: {"type":"message_stop"}"#
            .to_owned(),
    );
    assert_eq!(events.len(), CHUNKS);
    events.into_iter().map(|event| event + "\n\n").collect()
}

/// The body as network reads: one event per read, or fixed-size reads that split events.
/// A Gemini stream as `streamGenerateContent?alt=sse` sends it: every chunk a whole response
/// with its cumulative `usageMetadata`.
fn gemini_body() -> Vec<String> {
    let tail = r#""modelVersion":"gemini-2.5-flash","responseId":"Ab3dEf0123456789xyz""#;
    let mut events = Vec::new();
    for n in 0..CHUNKS - 1 {
        events.push(format!(
            r#"data: {{"candidates":[{{"content":{{"parts":[{{"text":" word{n} and"}}],"role":"model"}},"index":0}}],"usageMetadata":{{"promptTokenCount":1200,"candidatesTokenCount":{n},"totalTokenCount":{},"promptTokensDetails":[{{"modality":"TEXT","tokenCount":1200}}],"thoughtsTokenCount":64}},{tail}}}"#,
            1264 + n
        ));
    }
    events.push(format!(
        r#"data: {{"candidates":[{{"content":{{"parts":[{{"text":"."}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":1200,"candidatesTokenCount":96,"totalTokenCount":1360,"cachedContentTokenCount":1024,"thoughtsTokenCount":64}},{tail}}}"#
    ));
    events.into_iter().map(|event| event + "\r\n\r\n").collect()
}

/// A Responses API stream: `response.created`, text deltas, `response.completed`.
fn responses_body() -> Vec<String> {
    let mut events = vec![
        r#"event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_0123456789abcdef","object":"response","created_at":1732000000,"status":"in_progress","model":"gpt-5-mini-2025-08-07","output":[],"usage":null}}"#
            .to_owned(),
    ];
    for n in 0..CHUNKS - 2 {
        events.push(format!(
            r#"event: response.output_text.delta
data: {{"type":"response.output_text.delta","sequence_number":{},"item_id":"msg_0123456789abcdef","output_index":1,"content_index":0,"delta":" word{n} and","logprobs":[]}}"#,
            n + 1
        ));
    }
    events.push(
        r#"event: response.completed
data: {"type":"response.completed","sequence_number":99,"response":{"id":"resp_0123456789abcdef","object":"response","status":"completed","model":"gpt-5-mini-2025-08-07","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"msg_0123456789abcdef","role":"assistant","status":"completed","content":[{"type":"output_text","text":"...","annotations":[]}]}],"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},"output_tokens":96,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":1296}}}"#
            .to_owned(),
    );
    assert_eq!(events.len(), CHUNKS);
    events.into_iter().map(|event| event + "\n\n").collect()
}

fn reads(events: &[String], read_size: Option<usize>) -> Vec<Bytes> {
    match read_size {
        None => events
            .iter()
            .map(|event| Bytes::from(event.clone()))
            .collect(),
        Some(size) => Bytes::from(events.concat())
            .chunks(size)
            .map(Bytes::copy_from_slice)
            .collect(),
    }
}

async fn parse(parser: fn(Pieces) -> ChatStream, pieces: &[Bytes]) -> usize {
    // The parser owns its input, as it owns the HTTP body; cloning `Bytes` only counts a reference.
    let owned: Vec<Bytes> = pieces.to_vec();
    let input = stream::iter(owned.into_iter().map(Ok));
    let mut events = parser(Box::pin(input));
    let mut count = 0;
    while let Some(event) = events.next().await {
        event.expect("the fixture parses");
        count += 1;
    }
    count
}

type Pieces = std::pin::Pin<
    Box<dyn futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>,
>;

fn measure(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    parser: fn(Pieces) -> ChatStream,
    pieces: &[Bytes],
    target_ns: u32,
) {
    // Warm up and check the fixture.
    let produced = runtime.block_on(parse(parser, pieces));
    assert!(produced >= CHUNKS - 3, "{label}: {produced} events");
    let mut per_chunk = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let mut runs = 0u32;
        while started.elapsed() < SAMPLE_TIME {
            runtime.block_on(parse(parser, pieces));
            runs += 1;
        }
        let elapsed = started.elapsed();
        per_chunk.push(elapsed.as_nanos() as f64 / f64::from(runs) / CHUNKS as f64);
    }
    per_chunk.sort_by(f64::total_cmp);
    let median = per_chunk[SAMPLES / 2];
    println!(
        "{label:<40} median {median:>7.0} ns/chunk  (min {:>5.0}, max {:>5.0}; target <= {target_ns})",
        per_chunk[0],
        per_chunk[SAMPLES - 1]
    );
}

/// A request of `messages` messages: a system prompt and a user question for 2; for 20, a
/// conversation of about 300 characters a turn with a tool, one tool call and its result.
fn chat_request(messages: usize) -> ChatRequest {
    let turn = |n: usize| {
        format!(
            "Turn {n}: could you compare the two approaches we discussed, keeping the answer \
             short, with one example each, and say which one you would pick for a service that \
             handles a few thousand requests per second with strict latency targets? {}",
            "Thanks. ".repeat(8)
        )
    };
    let mut request = ChatRequest::new("gpt-4o-mini")
        .message(Message::system(
            "You are a concise assistant for a software team. Answer in plain text.",
        ))
        .temperature(0.2)
        .max_tokens(512);
    if messages <= 2 {
        return request.message(Message::user(turn(0)));
    }
    request = request.tool(Tool::new(
        "search_docs",
        "Searches the team's documentation",
        json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
    ));
    for n in 0..8 {
        request = request
            .message(Message::user(turn(n)))
            .message(Message::assistant(turn(n + 100)));
    }
    request = request
        .message(Message::user(turn(8)))
        .message(Message::assistant_tool_calls([ToolCall::new(
            "call_1",
            "search_docs",
            r#"{"query":"latency targets"}"#,
        )]))
        .message(Message::tool_result("call_1", turn(200)));
    assert_eq!(request.messages.len(), messages);
    request
}

fn measure_encoding(label: &str, encode: fn(&ChatRequest, bool) -> Vec<u8>, request: &ChatRequest) {
    let bytes = encode(request, true);
    assert!(bytes.len() > 100, "{label}: {} bytes", bytes.len());
    let mut per_request = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let mut runs = 0u32;
        while started.elapsed() < SAMPLE_TIME {
            black_box(encode(black_box(request), true));
            runs += 1;
        }
        per_request.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(runs));
    }
    per_request.sort_by(f64::total_cmp);
    println!(
        "{label:<40} median {:>7.2} µs/request (min {:>5.2}, max {:>5.2}; {} bytes)",
        per_request[SAMPLES / 2],
        per_request[0],
        per_request[SAMPLES - 1],
        bytes.len()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let openai = openai_body();
    let anthropic = anthropic_body();
    measure(
        &runtime,
        "openai, 50 chunks, one per read",
        openai_stream,
        &reads(&openai, None),
        2000,
    );
    measure(
        &runtime,
        "openai, 50 chunks, 1 KiB reads",
        openai_stream,
        &reads(&openai, Some(1024)),
        2000,
    );
    measure(
        &runtime,
        "anthropic, 50 events, one per read",
        anthropic_stream,
        &reads(&anthropic, None),
        2000,
    );
    measure(
        &runtime,
        "anthropic, 50 events, 1 KiB reads",
        anthropic_stream,
        &reads(&anthropic, Some(1024)),
        2000,
    );
    let gemini = gemini_body();
    let responses = responses_body();
    measure(
        &runtime,
        "gemini, 50 chunks, one per read",
        gemini_stream,
        &reads(&gemini, None),
        1500,
    );
    measure(
        &runtime,
        "gemini, 50 chunks, 1 KiB reads",
        gemini_stream,
        &reads(&gemini, Some(1024)),
        1500,
    );
    measure(
        &runtime,
        "responses, 50 events, one per read",
        responses_stream,
        &reads(&responses, None),
        1500,
    );
    measure(
        &runtime,
        "responses, 50 events, 1 KiB reads",
        responses_stream,
        &reads(&responses, Some(1024)),
        1500,
    );
    for messages in [2, 20] {
        let request = chat_request(messages);
        measure_encoding(
            &format!("openai body, {messages} messages"),
            openai_request_body,
            &request,
        );
        measure_encoding(
            &format!("anthropic body, {messages} messages"),
            anthropic_request_body,
            &request,
        );
    }
}
