//! The `fanout` scenario against a server that loses and repeats events:
//! the report must count each event once per subscriber, and name what
//! went missing and what came twice as errors, so that
//! `--max-error-rate 0` fails such a server instead of praising it.
//!
//! The stand-in speaks the Node.js baseline's protocol (`--target node`):
//! a WebSocket at `/ws` that answers `subscribe` with `subscribed`, and a
//! publish endpoint, here on a port of its own, that takes one event per
//! POST. It sends every odd `seq` twice and drops every even one.

use std::time::Duration;

use bidask_loadgen::{FanoutConfig, Target, run_fanout};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_repeated_events_are_errors_not_deliveries() {
    let (events, _) = broadcast::channel::<String>(1_024);
    let feed = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let publish = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let feed_address = feed.local_addr().expect("its address");
    let publish_address = publish.local_addr().expect("its address");
    tokio::spawn(serve_feed(feed, events.clone()));
    tokio::spawn(serve_publish(publish, events));

    let clients = 4;
    let report = run_fanout(FanoutConfig {
        target: Target::Node,
        publish_url: Some(format!("http://{publish_address}/publish")),
        clients,
        rate: 40,
        duration: Duration::from_secs(1),
        settle: Duration::from_millis(100),
        drain: Duration::from_millis(500),
        source_addresses: 1,
        progress: false,
        ..FanoutConfig::new(format!("http://{feed_address}"))
    })
    .await
    .expect("the run completes");

    let published = report.events_published;
    assert!(published >= 10, "only {published} events published");
    let odd = published.div_ceil(2);
    let clients = u64::from(clients);
    // Each odd event once per client, though it came twice.
    assert_eq!(
        report.messages_delivered + report.late_messages,
        odd * clients
    );
    assert_eq!(report.out_of_order, odd * clients);
    let errors: Vec<(&str, u64)> = report.errors_by_kind.iter().collect();
    assert!(
        errors.contains(&("undelivered", (published - odd) * clients)),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("out_of_order", odd * clients)),
        "{errors:?}"
    );
    assert!(report.delivery_ratio < 0.6, "{}", report.delivery_ratio);
    assert!(report.error_rate > 0.0);
}

/// The baseline's feed: `welcome`, then `subscribed` to whatever is asked
/// (at `seq` 0, before anything is published), then every event.
async fn serve_feed(listener: TcpListener, events: broadcast::Sender<String>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let mut events = events.subscribe();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let welcome =
                r#"{"type":"welcome","connection_id":1,"user":null,"heartbeat_interval_ms":0}"#;
            if ws.send(Message::text(welcome)).await.is_err() {
                return;
            }
            let Some(Ok(Message::Text(_subscribe))) = ws.next().await else {
                return;
            };
            let subscribed =
                r#"{"type":"subscribed","channel":"product:1","seq":0,"snapshot":null}"#;
            if ws.send(Message::text(subscribed)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Ok(event) = event else { return };
                        if ws.send(Message::text(event)).await.is_err() {
                            return;
                        }
                    }
                    read = ws.next() => if !matches!(read, Some(Ok(_))) { return },
                }
            }
        });
    }
}

/// The publish endpoint: HTTP/1.1 with keep-alive, one event per POST,
/// answered 204; odd `seq`s go out twice, even ones not at all.
async fn serve_publish(listener: TcpListener, events: broadcast::Sender<String>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let events = events.clone();
        tokio::spawn(async move {
            let mut tcp = BufReader::new(tcp);
            loop {
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    match tcp.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if tcp.read_exact(&mut body).await.is_err() {
                    return;
                }
                let body = String::from_utf8_lossy(&body).into_owned();
                let seq: u64 = body
                    .split_once(r#""seq":"#)
                    .and_then(|(_, rest)| rest.split(',').next())
                    .and_then(|seq| seq.parse().ok())
                    .unwrap_or(0);
                if seq % 2 == 1 {
                    let _ = events.send(body.clone());
                    let _ = events.send(body);
                }
                let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                if tcp.get_mut().write_all(answer).await.is_err() {
                    return;
                }
            }
        });
    }
}
