//! Live quotes across two instances sharing one PostgreSQL database and a Redis of the test's
//! own: a price upload on A reaches a stream on B within a second, a delete too; while Redis
//! is away only A's streams hear of A's writes, and B hears again once Redis is back.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use stockpile::Settings;
use stockpile_test_support::{parse_sse_event, take_sse_block, RedisServer};

use crate::support::{last_day, shared_redis_settings, TestApp, TestDatabase};

/// API.md: "within one second of the write's answer".
const WITHIN: Duration = Duration::from_secs(1);

fn instance(database: &TestDatabase, prefix: &str, redis_url: &str) -> Settings {
    let mut settings = shared_redis_settings(database, prefix);
    settings.redis.url = Some(serde_json::from_value(redis_url.into()).unwrap());
    settings
}

/// An open stream, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// One event: its id, its name and its data.
#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub name: String,
    pub data: serde_json::Value,
}

impl EventStream {
    pub async fn open(app: &TestApp, tickers: &str) -> Self {
        let response = app
            .get(&format!("/api/stream/quotes?tickers={tickers}"))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event within `within` (comments skipped), or `None`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(block) = take_sse_block(&mut self.buffer) {
                let Some(event) = parse_sse_event(&block) else {
                    continue;
                };
                return Some(Event {
                    id: event.id,
                    name: event.name,
                    data: serde_json::from_str(&event.data).unwrap(),
                });
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None)) => panic!("the stream ended"),
                Ok(Err(e)) => panic!("the stream failed: {e}"),
                Err(_) => return None,
            }
        }
    }

    pub async fn next(&mut self) -> Event {
        self.next_within(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no event within 5 s"))
    }
}

/// Uploads one bar closing at `close` (a day after the seeded ones) and returns when the
/// answer came.
pub async fn upload(app: &TestApp, ticker: &str, close: f64) -> Instant {
    let day = last_day() + chrono::Days::new(1);
    let uploaded = app
        .admin(Method::POST, &format!("/api/stocks/{ticker}/prices"))
        .json(&json!({"bars": [
            {"date": day.to_string(), "open": close, "high": close, "low": close, "close": close, "volume": 7}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200, "{}", uploaded.text().await.unwrap());
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_reaches_the_streams_of_the_other_within_a_second() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let prefix = format!("e2e-streams-{}:", uuid::Uuid::new_v4().simple());
    let settings_a = instance(&database, &prefix, &redis.url());
    let settings_b = instance(&database, &prefix, &redis.url());
    let a = TestApp::spawn_with(settings_a, database, 4, 5).await;
    // B shares A's database, which A's test database drops at the end.
    let b = TestApp::spawn_with(settings_b, TestDatabase::sqlite(), 0, 0).await;
    let ticker = a.json("/api/stocks").await["items"][0]["ticker"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut on_a = EventStream::open(&a, &ticker).await;
    let mut on_b = EventStream::open(&b, &format!("{ticker},ZZZZ")).await;
    for stream in [&mut on_a, &mut on_b] {
        let first = stream.next().await;
        assert_eq!((first.id, first.name.as_str()), (1, "quote"));
        assert_eq!(first.data["ticker"], ticker.as_str());
    }

    let answered = upload(&a, &ticker, 123.25).await;
    let event = on_b
        .next_within(WITHIN)
        .await
        .unwrap_or_else(|| panic!("B's stream heard nothing within {WITHIN:?} of A's write"));
    assert!(answered.elapsed() <= WITHIN);
    assert_eq!((event.id, event.name.as_str()), (2, "quote"));
    assert_eq!(event.data["price"], 123.25);
    assert_eq!(
        event.data["as_of"],
        (last_day() + chrono::Days::new(1)).to_string()
    );
    assert_eq!(on_a.next().await.data["price"], 123.25);
    // The event's data is the batch's entry, on the other instance too.
    let batch = b.json(&format!("/api/quotes?tickers={ticker}")).await;
    assert_eq!(batch["items"][0], event.data);

    // While Redis is away, A's write reaches A's streams only.
    redis.kill().await;
    upload(&a, &ticker, 130.5).await;
    assert_eq!(on_a.next().await.data["price"], 130.5);
    assert!(on_b.next_within(WITHIN).await.is_none());

    // Back, B subscribes again by itself and hears A's writes again.
    assert!(redis.restart().await, "{}", redis.log_tail());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut close = 140.0;
    let heard_again = loop {
        close += 1.0;
        upload(&a, &ticker, close).await;
        // Earlier uploads' events may arrive late; only this one's counts.
        let mut heard = false;
        while let Some(event) = on_b.next_within(Duration::from_millis(500)).await {
            heard |= event.data["price"] == close;
        }
        if heard || Instant::now() >= deadline {
            break heard;
        }
    };
    assert!(
        heard_again,
        "B never heard of A's writes after Redis came back"
    );

    let deleted = a
        .admin(Method::DELETE, &format!("/api/stocks/{ticker}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let removed = on_b.next_within(WITHIN).await.expect("a removed event");
    assert_eq!(removed.name, "removed");
    assert_eq!(removed.data, json!({"ticker": ticker}));
}

/// A stream request on a raw socket whose receive buffer is small and never read: a client
/// that stops reading, seen from the server as a socket that no longer drains.
async fn stalled_client(app: &TestApp, ticker: &str) -> tokio::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    use tokio::io::AsyncWriteExt;
    let address: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Before connecting, so that the window the client offers is small from the start.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&address.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    let request =
        format!("GET /api/stream/quotes?tickers={ticker} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// `stockpile_stream_clients` on `app`'s `/metrics`.
async fn open_streams(app: &TestApp) -> u64 {
    let page = app.get("/metrics").await.text().await.unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix("stockpile_stream_clients "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stockpile_stream_clients in {page}"))
}

/// API.md: "A client that stops reading is disconnected once its backlog is full; it never
/// slows writes or other streams." Disconnected means its TCP connection: the server stops
/// writing to a socket that does not drain, so ending the stream alone would leave the
/// connection open for as long as the client likes, and once it read again it would get the
/// rest of a finished response on a connection kept alive. Here, after draining what the
/// kernel held for it, it reads the end of the connection (or a reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_connection_and_slows_no_write_or_stream() {
    use tokio::io::AsyncReadExt;
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let app = TestApp::spawn(TestDatabase::sqlite(), 1, 5).await;
    let ticker = app.json("/api/stocks").await["items"][0]["ticker"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stalled = stalled_client(&app, &ticker).await;
    let mut reading = EventStream::open(&app, &ticker).await;
    assert_eq!(reading.next().await.id, 1);
    assert_eq!(open_streams(&app).await, 2);

    // Each event is a few hundred bytes: the backlog fills once the client's and the
    // server's socket buffers (the server bounds its send buffer on a stream) and the
    // server's write buffer are full, a few hundred events; an unbounded send buffer would
    // take about 14,000.
    const MOST_WRITES: u32 = 2_000;
    let mut writes = 0;
    while open_streams(&app).await == 2 {
        assert!(
            writes < MOST_WRITES,
            "the stalled stream still open after {writes} writes"
        );
        for _ in 0..20 {
            writes += 1;
            // Whole cents, so that the price reads back as the same number.
            let close = f64::from(10_000 + writes) / 100.0;
            let started = Instant::now();
            upload(&app, &ticker, close).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "write {writes} took {:?}",
                started.elapsed()
            );
            let event = reading.next().await;
            assert_eq!(
                (event.id, &event.data["price"]),
                (u64::from(writes) + 1, &close.into())
            );
        }
    }

    // Drains what the kernel held for it; then the server's close, within a few seconds.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = vec![0; 64 * 1024];
        let mut total = 0;
        loop {
            match stalled.read(&mut chunk).await {
                Ok(0) => return total,
                Ok(read) => total += read,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the stalled client's connection open"));
    assert!(drained > 0, "the stalled client got nothing at all");
    // The other stream goes on.
    upload(&app, &ticker, 99.5).await;
    assert_eq!(reading.next().await.data["price"], 99.5);
}
