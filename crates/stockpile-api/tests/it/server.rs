//! `serve` over a real socket: port 0, a plain HTTP/1.1 exchange, a graceful stop, and
//! clients that connect and then send slowly or not at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use stockpile_api::ClientLimits;

use crate::support::{state, untouched, Admin, TOKEN};

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

/// Everything the server sends on `stream` until it closes it, or until `within` passes
/// (then `None`: the server kept the connection open).
fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        // A reset after the server's answer or timeout is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&received).into_owned())
        }
        Err(_) => None,
    }
}

#[actix_web::test]
async fn slow_and_idle_clients_are_cut_off_without_holding_up_others() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut state = state(untouched(), Admin::On);
    state.limits = ClientLimits {
        request_head_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_secs(1),
        ..ClientLimits::default()
    };
    let server = stockpile_api::serve(listener, state).unwrap();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    actix_web::rt::task::spawn_blocking(move || {
        let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Connections that never send a byte, one that sends half a head, and one that
        // sends a head and then only part of its body.
        let mut idle: Vec<TcpStream> = (0..200).map(|_| connect()).collect();
        let mut half_head = connect();
        half_head.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
        let mut half_body = connect();
        write!(
            half_body,
            "PUT /api/stocks/ACME HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
        )
        .unwrap();

        // Meanwhile everyone else is served.
        let response = raw_get(port, "/health");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

        // The body that never completes is answered 408 once the body timeout passes.
        let answer = until_closed(&mut half_body, Duration::from_secs(5))
            .expect("the server never answered the incomplete body");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");

        // And every connection that sent no complete head is closed by the server.
        for stream in idle.iter_mut().chain([&mut half_head]) {
            assert!(
                until_closed(stream, Duration::from_secs(5)).is_some(),
                "a connection that sent no complete head was kept open"
            );
        }
    })
    .await
    .unwrap();

    handle.stop(true).await;
    running.await.unwrap().unwrap();
}
