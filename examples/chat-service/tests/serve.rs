//! What `main` does: the configuration from the environment, and `serve` answering on a
//! loopback port with the page.

use std::collections::HashMap;

use chat_service::{app, serve, ChatConfig};
use traced_llm::sink::InMemorySink;

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn without_keys_the_service_runs_offline_with_the_demo_users() {
    let config = ChatConfig::from_lookup(lookup(&[])).unwrap();
    assert_eq!(config.usernames(), ["alice", "bob"]);
    assert_eq!(config.provider(), "openai");
    assert_eq!(config.model_name_in_use(), "gpt-4o-mini");
}

#[test]
fn the_environment_sets_users_model_and_budget_and_bad_values_are_named() {
    let config = ChatConfig::from_lookup(lookup(&[
        ("CHAT_USERS", "carol:secret-one,dave:secret-two"),
        ("CHAT_MODEL", "gpt-5-mini"),
        ("CHAT_TOKEN_BUDGET", "5000"),
        ("SESSION_SECRET", "a session secret of some length"),
    ]))
    .unwrap();
    assert_eq!(config.usernames(), ["carol", "dave"]);
    assert_eq!(config.model_name_in_use(), "gpt-5-mini");
    let debug = format!("{config:?}");
    for secret in ["secret-one", "secret-two", "a session secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }

    let err = ChatConfig::from_lookup(lookup(&[("CHAT_TOKEN_BUDGET", "lots")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CHAT_TOKEN_BUDGET must be a whole number, got \"lots\""
    );
    let err = ChatConfig::from_lookup(lookup(&[("SESSION_SECRET", "short")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SESSION_SECRET must be at least 16 bytes long"
    );
}

#[tokio::test]
async fn serve_answers_the_page_and_its_assets_on_loopback() {
    let router = app(ChatConfig::offline().sink(InMemorySink::new())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<meta name="viewport""#));
    assert!(html.contains(r#"<form id="sign-in""#));
    for (path, content_type) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let asset = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(asset.headers()["content-type"], content_type);
    }
    // The page's script never puts text into the page as markup.
    let script = client.get(format!("{base}/app.js")).send().await.unwrap();
    assert!(!script.text().await.unwrap().contains("innerHTML"));

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
