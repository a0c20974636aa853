//! `serve` over a real socket: port 0, a plain HTTP/1.1 exchange, a graceful stop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::support::{state, untouched, Admin};

/// One `GET` over a fresh connection, returning the raw response.
fn raw_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[actix_web::test]
async fn serve_answers_on_an_ephemeral_port_and_stops_gracefully() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = stockpile_api::serve(listener, state(untouched(), Admin::Off)).unwrap();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    // A blocking client, off the runtime that drives the server.
    let response = actix_web::rt::task::spawn_blocking(move || raw_get(port, "/health"))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: "), "{response}");
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{response}"
    );
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");

    handle.stop(true).await;
    running.await.unwrap().unwrap();
}
