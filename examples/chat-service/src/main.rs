//! `cargo run -p chat-service`: the chat service on 127.0.0.1, port `PORT` (default 3000).
//!
//! Offline unless provider or PostHog keys are set; see the crate's README.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chat_service::{app, serve, ChatConfig, DEFAULT_PORT};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr; stdout carries the events as JSON lines when PostHog is not keyed.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, got {port:?}"))?,
        Err(_) => DEFAULT_PORT,
    };
    let config = ChatConfig::from_env()?;
    eprintln!(
        "answering with {} ({}); users: {}",
        config.model_name_in_use(),
        config.provider(),
        config.usernames().join(", ")
    );
    let sink = config.event_sink();
    let router = app(config)?;

    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    eprintln!(
        "chat service listening on http://{}/",
        listener.local_addr()?
    );
    serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;

    // Deliver the last events before exiting; bounded, whether or not PostHog answers.
    if let Err(err) = sink.shutdown(Duration::from_secs(5)).await {
        eprintln!("events not all delivered: {err}");
    }
    Ok(())
}
