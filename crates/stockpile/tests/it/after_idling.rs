//! Kept-alive connections after idling, as `HTTP_KEEP_ALIVE_S` says, over raw TCP so that
//! nothing but the server decides when a connection closes.
//!
//! The module's name sorts first on purpose: libtest starts tests in name order, so the 70 s
//! idle starts with the binary and runs beside every other test instead of after them.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{test_settings, TestApp, TestDatabase};

async fn app_with_keep_alive(seconds: u64) -> TestApp {
    let database = TestDatabase::sqlite();
    let mut settings = test_settings(&database);
    settings.http.keep_alive_s = seconds;
    TestApp::spawn_with(settings, database, 1, 5).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.base.trim_start_matches("http://");
    TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect to {address}: {e}"))
}

/// Sends `GET /health` on `stream` and reads its answer, head and body, leaving the
/// connection as the server left it.
async fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(read > 0, "the connection closed mid-answer: {answer:?}");
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or_else(|| panic!("no Content-Length: {head}"));
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Waits, at most `limit`, for the server to close `stream`; how long that took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {limit:?}"))
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    start.elapsed()
}

/// The default (API.md: 75 s) outlasts the 60 s idle timeout of common load balancers: a
/// connection one of them kept for 70 s is still served, not closed under its next request.
#[tokio::test]
async fn a_connection_idle_for_70_s_is_still_served_by_default() {
    let database = TestDatabase::sqlite();
    let app = TestApp::spawn_with(test_settings(&database), database, 1, 5).await;
    let mut stream = connect(&app).await;
    let first = health(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    // The idling is what is tested, so this one waits a fixed time.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let second = health(&mut stream).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_http_keep_alive_s() {
    let app = app_with_keep_alive(1).await;
    let mut stream = connect(&app).await;
    // Answers on one connection, which the server keeps open between them.
    for _ in 0..2 {
        let answer = health(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    let idle = until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "closed after {idle:?} idle, configured 1 s"
    );
}

#[tokio::test]
async fn http_keep_alive_s_0_closes_each_connection_after_its_answer() {
    let app = app_with_keep_alive(0).await;
    let mut stream = connect(&app).await;
    let answer = health(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    until_closed(&mut stream, Duration::from_secs(5)).await;
}
