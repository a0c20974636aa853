//! Live quotes (public): `GET /api/stream/quotes`, a Server-Sent Events stream (WHATWG HTML
//! §9.2) of a watchlist's quotes.
//!
//! The tickers are parsed as `GET /api/quotes` parses them, and every refusal (400, 503) is
//! answered before the stream starts. An event is written as three chunks: its `id:` and
//! `event:` lines (the only bytes made per stream), then its data, shared by every stream of
//! the ticker, then the blank line that ends it. The stream is never compressed: it does not
//! go through [`crate::conditional`], the only place that compresses.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::Stream;
use stockpile_application::live_quotes::{LiveEvent, LiveEventKind};
use stockpile_application::QuoteStream;

use crate::params::quote_tickers;
use crate::problem::{ApiError, Problem};
use crate::ApiState;

/// The media type of the stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The comment sent after a quiet heartbeat interval, so proxies do not cut an idle stream.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A watchlist's quotes as they change, as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/api/stream/quotes",
    tag = "stocks",
    operation_id = "stream_quotes",
    params(
        ("tickers" = String, Query, description = "1–100 distinct tickers separated by commas, case-insensitive, as for `GET /api/quotes`.", example = "AAPL,MSFT"),
        ("Last-Event-ID" = Option<String>, Header, description = "Ignored: a reconnecting client gets the first events again, so it never misses the latest state."),
    ),
    responses(
        (status = 200, description = "A Server-Sent Events stream, never compressed, with `Cache-Control: no-cache` and `X-Accel-Buffering: no`. First one `quote` event per ticker that has a stock, in the order given; then a `quote` event whenever a write (a price upload, the stock created or updated) on any instance changes one of the tickers, and a `removed` event (data `{\"ticker\": ...}`, see `RemovedTicker`) when its stock is deleted. A `quote` event's data is the ticker's `StockSummary` as JSON on one line. Every event has an `id:`, increasing within the stream; a `: keep-alive` comment follows every `STREAM_HEARTBEAT_S` seconds without an event. A client that stops reading is disconnected once its backlog is full.", body = String, content_type = "text/event-stream",
            example = json!("id: 1\nevent: quote\ndata: {\"ticker\":\"AAPL\",\"name\":\"Apple Inc.\",\"exchange\":\"NASDAQ\",\"sector\":\"Information Technology\",\"currency\":\"USD\",\"market_cap\":3000000000000,\"price\":191.0,\"change\":2.0,\"change_percent\":1.06,\"volume\":1000,\"as_of\":\"2025-11-21\"}\n\n: keep-alive\n\n")),
        (status = 400, description = "`tickers` is missing, empty, given twice, names an invalid ticker or more than 100 distinct tickers.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`STREAM_MAX_CLIENTS` streams are open on this instance, it is shutting down, or the database is unavailable; `Retry-After` says when to try again.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn quote_stream(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tickers = quote_tickers(req.query_string())?;
    let stream = state.service.open_quote_stream(tickers).await?;
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, EVENT_STREAM))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::HeaderName::from_static("x-accel-buffering"), "no"));
    if req.method() == Method::HEAD {
        // The same status and headers, and no stream: actix never polls the body of an answer
        // to HEAD, so a stream there would never notice its client leave, and never end.
        drop(stream);
        return Ok(response.streaming(futures::stream::empty::<Result<Bytes, Infallible>>()));
    }
    Ok(response.streaming(events(stream, state.stream_heartbeat)))
}

/// What the body still has to write, and where it takes the rest from.
struct Body {
    chunks: VecDeque<Bytes>,
    first: std::vec::IntoIter<LiveEvent>,
    stream: QuoteStream,
    last_id: u64,
    heartbeat: Duration,
}

impl Body {
    fn push(&mut self, event: LiveEvent) {
        self.last_id += 1;
        let name = match event.kind {
            LiveEventKind::Quote => "quote",
            LiveEventKind::Removed => "removed",
        };
        self.chunks.push_back(Bytes::from(format!(
            "id: {}\nevent: {name}\ndata: ",
            self.last_id
        )));
        self.chunks.push_back(event.data);
        self.chunks.push_back(Bytes::from_static(b"\n\n"));
    }
}

/// The body of a stream: its first events, then each change, with a keep-alive comment
/// after every quiet `heartbeat`; it ends when the stream does (backlog overflow, shutdown).
fn events(
    mut stream: QuoteStream,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let first = std::mem::take(&mut stream.first).into_iter();
    let body = Body {
        chunks: VecDeque::new(),
        first,
        stream,
        last_id: 0,
        heartbeat,
    };
    futures::stream::unfold(body, |mut body| async move {
        loop {
            if let Some(chunk) = body.chunks.pop_front() {
                return Some((Ok(chunk), body));
            }
            if let Some(event) = body.first.next() {
                body.push(event);
                continue;
            }
            match tokio::time::timeout(body.heartbeat, body.stream.changes.next()).await {
                Ok(Some(event)) => body.push(event),
                Ok(None) => return None,
                Err(_quiet) => body.chunks.push_back(Bytes::from_static(KEEP_ALIVE)),
            }
        }
    })
}
