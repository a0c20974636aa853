//! Nothing is lost: concurrent writers end in one consistent state, a server killed with
//! SIGKILL in the middle of an upload leaves all of it or none of it, and one stopped with
//! SIGTERM finishes the request in flight first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{seeded_scratch, stockpile, Scratch, TestApp, TestDatabase, ADMIN_TOKEN};

const WRITERS: u64 = 8;
const UPLOADS_PER_WRITER: u64 = 20;
const BARS_PER_UPLOAD: u64 = 8;

fn day(offset: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new(offset)))
        .unwrap_or_else(|| panic!("day {offset} is out of range"))
}

/// Upload `upload` of `writer`: eight consecutive days, starting two days later for each next
/// writer and one day later for each next upload, so every date is written by several
/// writers. Its prices (and volume) say which writer and upload sent it.
fn upload(writer: u64, upload: u64) -> Vec<Value> {
    let mark = writer * UPLOADS_PER_WRITER + upload;
    let close = 100 + mark;
    (0..BARS_PER_UPLOAD)
        .map(|n| {
            json!({
                "date": day(writer * 2 + upload + n).to_string(),
                "open": close, "high": close + 1, "low": close - 1, "close": close,
                "volume": mark,
            })
        })
        .collect()
}

/// 8 writers × 20 uploads of overlapping bars to one ticker, all at once; then the history
/// holds exactly the dates sent, each with a bar one writer sent, and the quote agrees with it.
async fn concurrent_writers_leave_one_consistent_state(app: &TestApp) {
    let created = app
        .admin(Method::PUT, "/api/stocks/RACE")
        .json(&json!({"name": "Race Inc", "exchange": "NYSE", "sector": "Industrials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let request = app.admin(Method::POST, "/api/stocks/RACE/prices");
            tokio::spawn(async move {
                for n in 0..UPLOADS_PER_WRITER {
                    let response = request
                        .try_clone()
                        .unwrap()
                        .json(&json!({ "bars": upload(writer, n) }))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(status, 200, "writer {writer}, upload {n}: {body}");
                    assert_eq!(body["upserted"], BARS_PER_UPLOAD);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    eprintln!(
        "{} concurrent uploads took {:?}",
        WRITERS * UPLOADS_PER_WRITER,
        started.elapsed()
    );

    let mut sent: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for writer in 0..WRITERS {
        for n in 0..UPLOADS_PER_WRITER {
            for bar in upload(writer, n) {
                sent.entry(bar["date"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(bar);
            }
        }
    }
    let history = app
        .json("/api/stocks/RACE/history?from=2024-12-01&to=2025-12-31")
        .await;
    let bars = history["bars"].as_array().unwrap();
    let dates: BTreeSet<&str> = bars.iter().map(|b| b["date"].as_str().unwrap()).collect();
    assert_eq!(dates.len(), bars.len(), "a date appears twice");
    assert_eq!(
        dates,
        sent.keys().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for bar in bars {
        let date = bar["date"].as_str().unwrap();
        // Prices are JSON numbers: compare them as numbers, not as `100` against `100.0`.
        let as_numbers = |b: &Value| {
            ["open", "high", "low", "close", "volume"].map(|field| b[field].as_f64().unwrap())
        };
        assert!(
            sent[date].iter().any(|s| as_numbers(s) == as_numbers(bar)),
            "{bar} is no bar a writer sent for {date}"
        );
    }

    let detail = app.json("/api/stocks/RACE").await;
    let (last, previous) = (&bars[bars.len() - 1], &bars[bars.len() - 2]);
    let number = |v: &Value| v.as_f64().unwrap();
    assert_eq!(detail["as_of"], last["date"], "{detail}");
    for (quote, bar) in [
        ("price", "close"),
        ("open", "open"),
        ("high", "high"),
        ("low", "low"),
        ("volume", "volume"),
    ] {
        assert_eq!(
            number(&detail[quote]),
            number(&last[bar]),
            "{quote}: {detail}"
        );
    }
    assert_eq!(
        number(&detail["previous_close"]),
        number(&previous["close"])
    );
    assert_eq!(
        number(&detail["change"]),
        number(&last["close"]) - number(&previous["close"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overlapping_uploads_lose_nothing_over_sqlite() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let app = TestApp::spawn(TestDatabase::sqlite(), 1, 5).await;
    concurrent_writers_leave_one_consistent_state(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overlapping_uploads_lose_nothing_over_postgres() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let app = TestApp::spawn(database, 1, 5).await;
    concurrent_writers_leave_one_consistent_state(&app).await;
}

/// The big upload: 10,000 consecutive days ending a week before the seeded bars, all with
/// prices `marker`, so that a count of bars at `marker` tells how much of it was kept.
const BIG_UPLOAD: u64 = 10_000;

fn big_upload_first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 14)
        .and_then(|d| d.checked_sub_days(Days::new(BIG_UPLOAD - 1)))
        .unwrap_or_default()
}

fn big_upload(marker: u64) -> Vec<u8> {
    let bars: Vec<Value> = (0..BIG_UPLOAD)
        .map(|n| {
            let date = big_upload_first_day()
                .checked_add_days(Days::new(n))
                .unwrap_or_default();
            json!({"date": date.to_string(), "open": marker, "high": marker + 1,
                   "low": marker - 1, "close": marker, "volume": 1})
        })
        .collect();
    serde_json::to_vec(&json!({ "bars": bars })).unwrap_or_default()
}

/// `stockpile serve` over the scratch database, once `/health` answers.
async fn serve(scratch: &Scratch) -> (tokio::process::Child, String) {
    let port = stockpile_test_support::spare_port();
    let child = stockpile(scratch, port)
        .arg("serve")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start stockpile serve: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let up = stockpile_test_support::wait_until(Duration::from_secs(10), || async {
        reqwest::get(format!("{base}/health")).await.is_ok()
    })
    .await;
    assert!(up, "stockpile serve did not answer within 10 s");
    (child, base)
}

/// How many of the ticker's bars are in the big upload with prices `marker`, through the API
/// (a history spans at most 20 years, so in two windows).
async fn bars_at(client: &reqwest::Client, base: &str, ticker: &str, marker: u64) -> usize {
    let first = big_upload_first_day();
    let middle = first.checked_add_days(Days::new(7_000)).unwrap_or_default();
    let mut count = 0;
    for (from, to) in [
        (first, middle),
        (
            middle.succ_opt().unwrap_or_default(),
            NaiveDate::from_ymd_opt(2025, 11, 21).unwrap_or_default(),
        ),
    ] {
        let url = format!("{base}/api/stocks/{ticker}/history?from={from}&to={to}");
        let history: Value = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        count += history["bars"]
            .as_array()
            .unwrap_or_else(|| panic!("no bars in {history}"))
            .iter()
            .filter(|bar| bar["close"].as_f64() == Some(marker as f64))
            .count();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_a_big_upload_keeps_all_of_it_or_none_over_sqlite() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let scratch = seeded_scratch("kill", None).await;
    let probe = WriterProbe::Sqlite(sqlite_write_lock_probe(&scratch).await);
    killed_during_a_big_upload_keeps_all_or_none(&scratch, &probe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_a_big_upload_keeps_all_of_it_or_none_over_postgres() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let scratch = seeded_scratch("kill-pg", Some(database)).await;
    let probe = WriterProbe::Postgres(
        sea_orm::Database::connect(scratch.database_url())
            .await
            .unwrap_or_else(|e| panic!("cannot open the probe connection: {e}")),
    );
    killed_during_a_big_upload_keeps_all_or_none(&scratch, &probe).await;
}

/// Three times: an upload, a SIGKILL once the server's transaction has written, a restart;
/// the upload is then all there or not at all, and an upload acknowledged before stays.
async fn killed_during_a_big_upload_keeps_all_or_none(scratch: &Scratch, probe: &WriterProbe) {
    let client = reqwest::Client::new();
    let (mut server, mut base) = serve(scratch).await;
    let list: Value = client
        .get(format!("{base}/api/stocks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tickers: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ticker"].as_str().unwrap().to_owned())
        .collect();
    let (acknowledged, killed) = (&tickers[0], &tickers[1]);

    // One upload that runs to its end: its answer must survive every kill that follows.
    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/stocks/{acknowledged}/prices"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(big_upload(1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    eprintln!("a {BIG_UPLOAD}-bar upload took {:?}", started.elapsed());

    // Three times: send an upload with other prices, wait until the server's transaction has
    // written, SIGKILL it, restart it over the same database.
    for round in 1..=3_u64 {
        let marker = 1_000 + round;
        let body = big_upload(marker);
        let mut connection = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /api/stocks/{killed}/prices HTTP/1.1\r\nhost: 127.0.0.1\r\n\
             authorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        connection.write_all(head.as_bytes()).await.unwrap();
        connection.write_all(&body).await.unwrap();
        let sent = Instant::now();
        let in_transaction = probe.wait_for_writer(Duration::from_secs(5)).await;
        server.start_kill().unwrap();
        server.wait().await.unwrap();
        let mut answer = Vec::new();
        let _ = connection.read_to_end(&mut answer).await;
        let answered = String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200");
        assert!(
            in_transaction,
            "round {round}: the server's transaction never wrote within 5 s"
        );

        (server, base) = serve(scratch).await;
        let kept = bars_at(&client, &base, killed, marker).await;
        eprintln!(
            "round {round}: SIGKILL {:?} after the request, inside the transaction; \
             answered 200 before: {answered}; {kept} of {BIG_UPLOAD} bars kept",
            sent.elapsed()
        );
        assert!(
            kept == 0 || kept == BIG_UPLOAD as usize,
            "round {round}: {kept} of the {BIG_UPLOAD} bars survived the kill"
        );
        if answered {
            assert_eq!(kept, BIG_UPLOAD as usize, "an acknowledged upload was lost");
        }
        assert_eq!(
            bars_at(&client, &base, acknowledged, 1_000).await,
            BIG_UPLOAD as usize,
            "the acknowledged upload did not survive the kill"
        );
    }
}

/// A connection of the test's own to the server's database, to see when the server's upload
/// transaction has written:
/// - SQLite: `BEGIN IMMEDIATE` with no busy timeout fails exactly while another connection
///   holds the write lock;
/// - PostgreSQL: another backend of the database has a transaction id, which a transaction
///   gets at its first write.
enum WriterProbe {
    Sqlite(sea_orm::DatabaseConnection),
    Postgres(sea_orm::DatabaseConnection),
}

async fn sqlite_write_lock_probe(scratch: &Scratch) -> sea_orm::DatabaseConnection {
    use sea_orm::sqlx::sqlite::SqliteJournalMode;
    let mut options = sea_orm::ConnectOptions::new(format!(
        "sqlite://{}",
        scratch.dir.join("kill.db").display()
    ));
    // One connection, so that BEGIN and ROLLBACK run on the same one.
    options
        .max_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::ZERO)
        });
    sea_orm::Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open the probe connection: {e}"))
}

impl WriterProbe {
    /// True as soon as another connection has a write transaction open; false if none did in
    /// time.
    async fn wait_for_writer(&self, within: Duration) -> bool {
        use sea_orm::ConnectionTrait;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let writing = match self {
                Self::Sqlite(db) => {
                    let locked = db.execute_unprepared("BEGIN IMMEDIATE").await.is_err();
                    if !locked {
                        let _ = db.execute_unprepared("ROLLBACK").await;
                    }
                    locked
                }
                Self::Postgres(db) => db
                    .query_one(sea_orm::Statement::from_string(
                        db.get_database_backend(),
                        "SELECT 1 AS writing FROM pg_stat_activity WHERE datname = current_database() \
                         AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL",
                    ))
                    .await
                    .is_ok_and(|row| row.is_some()),
            };
            if writing {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }
}

/// SIGTERM with a request in flight: the server stops taking connections, finishes and answers
/// the request, then exits cleanly, and the write it made is there after a restart. The body
/// is sent in two parts around the signal, so the request is certainly in flight when it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let scratch = seeded_scratch("term", None).await;
    let (mut server, base) = serve(&scratch).await;
    let addr = base.trim_start_matches("http://").to_owned();

    let body = br#"{"name":"Acme Corp","exchange":"NYSE","sector":"Industrials"}"#;
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /api/stocks/ACME HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    // Time for the server to route the request and start reading its body.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.id().expect("the server runs").to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "a stopping server still accepts connections"
    );

    stream.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the request in flight was answered within 10 s")
    .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201 Created"),
        "the request in flight was not finished: {response}"
    );
    let exited = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server exited within 10 s of finishing its last request")
        .unwrap();
    assert!(exited.success(), "the server exited with {exited}");

    let (_restarted, base) = serve(&scratch).await;
    let detail = reqwest::get(format!("{base}/api/stocks/ACME"))
        .await
        .unwrap();
    assert_eq!(detail.status(), 200, "the finished write was lost");
}
