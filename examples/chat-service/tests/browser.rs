//! The page in a real headless Chromium, driven over WebDriver as a person uses it: sign in,
//! watch the answer stream in, 👍, see an error banner, stop an answer halfway. The events
//! captured meanwhile must tell that story. It also takes the README's screenshot.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian: `apt-get install -y
//! chromium chromium-driver`); without them it fails and says so.

mod support;

use std::time::Duration;

use chat_service::demo::DemoModel;
use serde_json::Value;
use support::webdriver::{Browser, ENTER};
use support::{TestService, FLAG};

const LAST_ANSWER: &str = "document.querySelector('#messages li.assistant:last-child')";
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_chats_rates_and_stops_an_answer() {
    // Words 120 ms apart: slow enough to see the answer grow between polls.
    let service = TestService::new(DemoModel::new().with_word_delay(Duration::from_millis(120)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(chat_service::serve(
        listener,
        service.router.clone(),
        std::future::pending(),
    ));

    let browser = Browser::start(480, 760).await;
    browser.goto(&url).await;
    browser
        .wait_for("return !document.getElementById('sign-in').hidden", WAIT)
        .await;

    // A wrong password shows the banner; the right one opens the chat.
    browser
        .type_into(&browser.find("#username").await, "alice")
        .await;
    browser
        .type_into(&browser.find("#password").await, "nope")
        .await;
    browser
        .click(&browser.find("#sign-in button[type=submit]").await)
        .await;
    browser
        .wait_for("return !document.getElementById('banner').hidden", WAIT)
        .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('banner-text').textContent")
            .await,
        "Wrong username or password."
    );
    browser
        .type_into(&browser.find("#password").await, "wonderland")
        .await;
    browser
        .click(&browser.find("#sign-in button[type=submit]").await)
        .await;
    browser
        .wait_for("return !document.getElementById('chat').hidden", WAIT)
        .await;

    // Enter sends; the answer appears in parts.
    let question = "What should I pack for Lisbon in April?";
    let message = browser.find("#message").await;
    browser
        .type_into(&message, &format!("{question}{ENTER}"))
        .await;
    let mut lengths: Vec<u64> = Vec::new();
    let mut waited = Duration::ZERO;
    loop {
        let seen = browser
            .eval(&format!(
                "const a = {LAST_ANSWER}; return a ? [a.dataset.state, a.querySelector('.text').textContent.length] : null"
            ))
            .await;
        if let Value::Array(seen) = seen {
            let length = seen[1].as_u64().unwrap();
            if seen[0] == "done" {
                lengths.push(length);
                break;
            }
            if length > 0 && lengths.last() != Some(&length) {
                lengths.push(length);
            }
        }
        assert!(waited < WAIT, "the answer did not finish: {lengths:?}");
        tokio::time::sleep(Duration::from_millis(40)).await;
        waited += Duration::from_millis(40);
    }
    let growing = &lengths[..lengths.len() - 1];
    assert!(
        growing.len() >= 2,
        "the answer came in one piece: {lengths:?}"
    );
    assert!(
        growing.windows(2).all(|pair| pair[0] < pair[1]),
        "{lengths:?}"
    );
    assert!(lengths.last() >= growing.last(), "{lengths:?}");

    let answer = browser
        .eval(&format!(
            "return {LAST_ANSWER}.querySelector('.text').textContent"
        ))
        .await;
    assert!(
        answer.as_str().unwrap().starts_with("Lisbon in spring"),
        "{answer}"
    );

    // 👍, then the screenshot for the README.
    browser
        .wait_for(
            &format!("return {LAST_ANSWER}.querySelector('.thumbs-up') !== null"),
            WAIT,
        )
        .await;
    browser
        .click(
            &browser
                .find("#messages li.assistant:last-child .thumbs-up")
                .await,
        )
        .await;
    browser
        .wait_for(
            &format!("return {LAST_ANSWER}.querySelector('.thumbs-up').getAttribute('aria-pressed') === 'true'"),
            WAIT,
        )
        .await;
    let png = browser.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() < 150_000, "the screenshot is {} bytes", png.len());
    // Every run's screenshot lands in the target directory; the README's copy is replaced only
    // when asked (`UPDATE_SCREENSHOT=1`), so a test run leaves the checkout as it was.
    std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/screenshot.png"),
        &png,
    )
    .unwrap();
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/screenshot.png"), &png).unwrap();
    }

    let generations = service.generations();
    assert_eq!(generations.len(), 1);
    let generation = &generations[0];
    let trace_id = generation["$ai_trace_id"].as_str().unwrap().to_owned();
    assert_eq!(service.distinct_ids("$ai_generation"), ["user_alice"]);
    assert_eq!(generation["username"], "alice");
    assert_eq!(generation["message_count"], 1);
    assert_eq!(generation["topic"], "pack lisbon april");
    assert_eq!(generation[&format!("$feature/{FLAG}")], "control");
    assert_eq!(generation["$ai_stop_reason"], "stop");
    assert_eq!(
        generation["$ai_output_choices"][0]["content"][0]["text"],
        answer
    );
    let feedback = service.named("$ai_feedback");
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["$ai_trace_id"], trace_id.as_str());
    assert_eq!(feedback[0]["$ai_feedback_score"], 1.0);
    assert_eq!(service.distinct_ids("$ai_feedback"), ["user_alice"]);

    // A provider error becomes the banner's readable message.
    browser
        .type_into(&message, &format!("Show me an #error{ENTER}"))
        .await;
    browser
        .wait_for(
            &format!("return {LAST_ANSWER}.dataset.state === 'error'"),
            WAIT,
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('banner').hidden")
            .await,
        false
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('banner-text').textContent")
            .await,
        "The model provider had a problem (HTTP 503). Please try again."
    );

    // Stop halfway: the page keeps what came, the call is recorded as cancelled.
    browser
        .type_into(&message, &format!("Tell me about Rust{ENTER}"))
        .await;
    browser
        .wait_for(
            &format!("return {LAST_ANSWER}.querySelector('.text').textContent.length > 0"),
            WAIT,
        )
        .await;
    browser.click(&browser.find("#stop").await).await;
    browser
        .wait_for(
            &format!("return {LAST_ANSWER}.dataset.state === 'stopped'"),
            WAIT,
        )
        .await;
    let mut waited = Duration::ZERO;
    while service.generations().len() < 3 {
        assert!(waited < WAIT, "the stopped call was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let generations = service.generations();
    assert_eq!(generations[1]["$ai_error_type"], "server");
    assert_eq!(generations[2]["$ai_stop_reason"], "cancelled");
    assert_eq!(generations[2]["$ai_trace_id"], trace_id.as_str());
    assert_eq!(generations[2]["message_count"], 3);

    browser.quit().await;
    server.abort();
}
