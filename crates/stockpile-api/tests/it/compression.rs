//! Compression of cached reads: negotiation, the ETag of each representation, `Vary`, and 304
//! across representations (API.md, "Compression").

use std::io::Read as _;

use actix_web::test::TestRequest;
use stockpile_application::cache_aside::etag_of;
use stockpile_application::ports::{MockStockRepository, StockPage};

use crate::support::{init, record, send_to, service, Admin, Reply};

/// A repository whose every list page holds `stocks` stocks.
fn listing(stocks: usize) -> MockStockRepository {
    let mut repository = MockStockRepository::new();
    repository.expect_list().returning(move |_| {
        Ok(StockPage {
            items: (0..stocks).map(|i| record(&format!("T{i}"))).collect(),
            total: stocks as u64,
        })
    });
    repository
}

fn get(accept_encoding: Option<&str>) -> TestRequest {
    let request = TestRequest::get().uri("/api/stocks");
    match accept_encoding {
        Some(value) => request.insert_header(("accept-encoding", value)),
        None => request,
    }
}

fn decoded(reply: &Reply) -> Vec<u8> {
    let mut plain = Vec::new();
    match reply
        .headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap())
    {
        Some("br") => {
            brotli::Decompressor::new(&reply.body[..], 4096)
                .read_to_end(&mut plain)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&reply.body[..])
                .read_to_end(&mut plain)
                .unwrap();
        }
        Some(other) => panic!("unexpected coding {other}"),
        None => plain.extend_from_slice(&reply.body),
    }
    plain
}

fn with_suffix(etag: &str, suffix: &str) -> String {
    format!("{}-{suffix}\"", etag.trim_end_matches('"'))
}

#[actix_web::test]
async fn each_coding_has_its_etag_and_decodes_to_the_body() {
    let app = init(service(listing(40)), Admin::Off).await;
    let plain = send_to(&app, get(None)).await;
    assert_eq!(plain.status, 200);
    assert!(plain.body.len() >= 1024, "a body worth compressing");
    assert!(!plain.headers.contains_key("content-encoding"));
    assert_eq!(plain.header("vary"), "Accept-Encoding");
    let etag = plain.header("etag").to_owned();
    assert_eq!(etag, *etag_of(&plain.body));

    for (accept, coding) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("*", "br"),
    ] {
        let reply = send_to(&app, get(Some(accept))).await;
        assert_eq!(reply.status, 200, "{accept}");
        assert_eq!(reply.header("x-cache"), "HIT", "{accept}");
        assert_eq!(reply.header("content-encoding"), coding, "{accept}");
        assert_eq!(reply.header("etag"), with_suffix(&etag, coding), "{accept}");
        assert_eq!(reply.header("vary"), "Accept-Encoding", "{accept}");
        assert_eq!(reply.header("content-type"), "application/json");
        assert!(
            reply.body.len() * 4 < plain.body.len(),
            "{accept}: not compressed"
        );
        assert_eq!(decoded(&reply), plain.body, "{accept}");
    }
    for refused in ["identity", "br;q=0, gzip;q=0", "*;q=0", "deflate"] {
        let reply = send_to(&app, get(Some(refused))).await;
        assert!(!reply.headers.contains_key("content-encoding"), "{refused}");
        assert_eq!(reply.header("etag"), etag, "{refused}");
        assert_eq!(reply.body, plain.body, "{refused}");
    }
}

#[actix_web::test]
async fn short_bodies_are_sent_as_they_are() {
    let app = init(service(listing(0)), Admin::Off).await;
    let reply = send_to(&app, get(Some("br, gzip"))).await;
    assert!(reply.body.len() < 1024);
    assert!(!reply.headers.contains_key("content-encoding"));
    assert_eq!(reply.header("etag"), &*etag_of(&reply.body));
    assert_eq!(reply.header("vary"), "Accept-Encoding");
}

#[actix_web::test]
async fn any_representations_etag_answers_304_with_this_requests_etag() {
    let app = init(service(listing(40)), Admin::Off).await;
    let etag = send_to(&app, get(None)).await.header("etag").to_owned();
    let cases = [
        (etag.clone(), Some("br"), with_suffix(&etag, "br")),
        (
            with_suffix(&etag, "gzip"),
            Some("br"),
            with_suffix(&etag, "br"),
        ),
        (with_suffix(&etag, "br"), None, etag.clone()),
        (
            with_suffix(&etag, "br"),
            Some("gzip"),
            with_suffix(&etag, "gzip"),
        ),
    ];
    for (if_none_match, accept, expected) in cases {
        let reply = send_to(
            &app,
            get(accept).insert_header(("if-none-match", if_none_match.as_str())),
        )
        .await;
        assert_eq!(reply.status, 304, "{if_none_match} / {accept:?}");
        assert!(reply.body.is_empty());
        assert_eq!(
            reply.header("etag"),
            expected,
            "{if_none_match} / {accept:?}"
        );
        assert_eq!(reply.header("vary"), "Accept-Encoding");
        assert_eq!(reply.header("x-cache"), "HIT");
    }
    let other = send_to(
        &app,
        get(Some("br")).insert_header(("if-none-match", "\"another-br\"")),
    )
    .await;
    assert_eq!(other.status, 200, "an ETag of another body is no match");
}
