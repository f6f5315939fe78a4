//! A two-step agent under one trace: the model calls a tool, the tool runs, the model answers;
//! then the user gives a thumbs up.
//!
//! ```text
//! cargo run --example agent_trace
//! ```
//!
//! It runs offline on a scripted model. Every event goes to stdout as one JSON line in PostHog's
//! capture format, and to PostHog as well when `POSTHOG_API_KEY` is set (`POSTHOG_HOST`
//! honoured). The tree those events form, rebuilt from `$ai_trace_id`, `$ai_span_id` and
//! `$ai_parent_id` as PostHog's UI does, is drawn on stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use traced_llm::event::{Event, Feedback};
use traced_llm::posthog;
use traced_llm::posthog::PosthogSink;
use traced_llm::sink::{Fanout, InMemorySink, JsonlSink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::{ContentPart, Tool, ToolCall, Usage};
use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

const MODEL: &str = "gpt-4o-mini";

fn offline_model() -> ScriptedModel {
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("offline://scripted")
        .with_latency(Duration::from_millis(20))
        .respond(
            ChatResponse::default()
                .with_id("chatcmpl-agent-1")
                .with_model("gpt-4o-mini-2024-07-18")
                .with_part(ContentPart::ToolCall(ToolCall::new(
                    "call_weather_1",
                    "get_weather",
                    r#"{"city":"Paris"}"#,
                )))
                .with_finish_reason("tool_calls")
                .with_usage(Usage::new(82, 17)),
        )
        .respond(
            ChatResponse::text_response("It is sunny and 24 °C in Paris: no umbrella needed.")
                .with_id("chatcmpl-agent-2")
                .with_model("gpt-4o-mini-2024-07-18")
                .with_finish_reason("stop")
                .with_usage(Usage::new(118, 15).with_cache_read(64)),
        )
}

fn weather_tool() -> Tool {
    Tool::new(
        "get_weather",
        "Current weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

/// The tool itself: a stand-in for a real weather service.
fn get_weather(arguments: &str) -> Value {
    let city = serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|args| args["city"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    json!({"city": city, "sky": "sunny", "celsius": 24})
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorded = InMemorySink::new();
    let mut sink = Fanout::new()
        .with(JsonlSink::stdout())
        .with(recorded.clone());
    if std::env::var_os("POSTHOG_API_KEY").is_some() {
        let posthog = PosthogSink::from_env()?;
        eprintln!("sending events to {}", posthog.url());
        sink = sink.with(posthog);
    }
    let model = TracedModel::new(offline_model(), sink);
    let tracer = model.tracer();

    let question = "Do I need an umbrella in Paris today?";
    let trace = tracer
        .trace("weather_agent")
        .with_distinct_id("user_42")
        .with_session_id("session_2026_11_28")
        .with_input(json!({"question": question}));

    // Step 1: the model decides to call the tool.
    let mut conversation = vec![
        Message::system("You answer weather questions. Use the tools."),
        Message::user(question),
    ];
    let plan = trace.child("step_1_choose_tool");
    let first = plan
        .in_scope(
            model.chat(
                &ChatRequest::new(MODEL)
                    .messages(conversation.clone())
                    .tool(weather_tool()),
            ),
        )
        .await?;
    let call = first.tool_calls().next().cloned().ok_or("no tool call")?;
    plan.end_with_output(json!({"tool": call.name, "arguments": call.arguments}));

    // The tool runs in a span of its own.
    let tool_span = trace
        .child(format!("tool:{}", call.name))
        .with_input(json!({"arguments": call.arguments}));
    let result = get_weather(&call.arguments);
    tool_span.end_with_output(result.clone());

    // Step 2: the model answers with the tool's result.
    conversation.push(Message::assistant_tool_calls([call.clone()]));
    conversation.push(Message::tool_result(&call.id, result.to_string()));
    let answer_span = trace.child("step_2_answer");
    let answer = answer_span
        .in_scope(model.chat(&ChatRequest::new(MODEL).messages(conversation)))
        .await?;
    answer_span.end_with_output(json!({"answer": answer.text()}));
    eprintln!("assistant: {}", answer.text());

    let trace_id = trace.trace_id().to_owned();
    trace.end_with_output(json!({"answer": answer.text()}));

    // The user liked it.
    tracer.feedback(
        Feedback::thumbs_up(&trace_id)
            .with_text("Clear answer, thanks")
            .with_distinct_id("user_42"),
    );

    model.shutdown(Duration::from_secs(5)).await?;
    draw_tree(&recorded.events());
    Ok(())
}

/// Draws the events as PostHog's UI nests them: node id = `$ai_span_id`, else the event's uuid;
/// parent = `$ai_parent_id`, else the trace id. Feedback and metrics hang off the trace.
fn draw_tree(events: &[Event]) {
    let json: Vec<Value> = events
        .iter()
        .map(|event| posthog::capture_event(event).to_json())
        .collect();
    let mut children: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut roots = Vec::new();
    let mut trace_scores = Vec::new();
    for event in &json {
        let props = &event["properties"];
        let trace_id = props["$ai_trace_id"].as_str().unwrap_or_default();
        match event["event"].as_str() {
            Some("$ai_trace") => roots.push(event),
            Some("$ai_feedback" | "$ai_metric") => trace_scores.push(event),
            _ => {
                let parent = props["$ai_parent_id"].as_str().unwrap_or(trace_id);
                children.entry(parent.to_owned()).or_default().push(event);
            }
        }
    }
    for root in roots {
        let trace_id = root["properties"]["$ai_trace_id"]
            .as_str()
            .unwrap_or_default();
        eprintln!("{} (trace {trace_id})", label(root));
        draw_children(&children, trace_id, "");
        for score in &trace_scores {
            if score["properties"]["$ai_trace_id"] == root["properties"]["$ai_trace_id"] {
                eprintln!("   on this trace: {}", label(score));
            }
        }
    }
}

fn draw_children(children: &BTreeMap<String, Vec<&Value>>, parent: &str, indent: &str) {
    let Some(nodes) = children.get(parent) else {
        return;
    };
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        eprintln!("{indent}{} {}", if last { "└─" } else { "├─" }, label(node));
        let id = node["properties"]["$ai_span_id"]
            .as_str()
            .or(node["uuid"].as_str())
            .unwrap_or_default();
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        draw_children(children, id, &deeper);
    }
}

fn label(event: &Value) -> String {
    let props = &event["properties"];
    let text = |key: &str| props[key].as_str().unwrap_or_default().to_owned();
    match event["event"].as_str().unwrap_or_default() {
        "$ai_trace" => format!("$ai_trace {}", text("$ai_span_name")),
        "$ai_span" => format!(
            "$ai_span {} ({:.0} ms)",
            text("$ai_span_name"),
            props["$ai_latency"].as_f64().unwrap_or(0.0) * 1e3
        ),
        "$ai_generation" => format!(
            "$ai_generation {} · {} in / {} out tokens · stop {}",
            text("$ai_model"),
            props["$ai_input_tokens"],
            props["$ai_output_tokens"],
            text("$ai_stop_reason")
        ),
        "$ai_feedback" => format!(
            "$ai_feedback score {} \"{}\"",
            props["$ai_feedback_score"],
            text("$ai_feedback_text")
        ),
        other => other.to_owned(),
    }
}
