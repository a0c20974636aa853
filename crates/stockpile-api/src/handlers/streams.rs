//! Live quotes (public): `GET /api/stream/quotes`, a Server-Sent Events stream (WHATWG HTML
//! §9.2) of a watchlist's quotes.
//!
//! The tickers are parsed as `GET /api/quotes` parses them, and every refusal (400, 503) is
//! answered before the stream starts. An event is written as three chunks: its `id:` and
//! `event:` lines (the only bytes made per stream), then its data, shared by every stream of
//! the ticker, then the blank line that ends it. The stream is never compressed: it does not
//! go through [`crate::conditional`], the only place that compresses.
//!
//! A client that stops reading gets its connection closed once its backlog is full: the
//! server then no longer polls the stream's body (it waits for the socket to drain first), so
//! ending the body would end nothing, and [`keep_socket`] keeps the handle to close it by.

use std::any::Any;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::Extensions;
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

/// The kernel's send buffer for a stream's connection (Linux doubles it). Left to autotuning,
/// a stalled client's grows towards `tcp_wmem`'s maximum (4 MB by default): that much kernel
/// memory per stalled client, and thousands of events before its backlog even starts to fill.
/// Events are a few hundred bytes each, far below what this lets through.
const STREAM_SEND_BUFFER: usize = 16 * 1024;

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
    let mut stream = state.service.open_quote_stream(tickers).await?;
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
    if let Some(ConnectionSocket(socket)) = req.conn_data::<ConnectionSocket>().cloned() {
        if let Err(e) = socket.set_send_buffer_size(STREAM_SEND_BUFFER) {
            tracing::warn!(error = %e, "cannot bound a live-quote connection's send buffer");
        }
        let stalled = stream.changes.stalled();
        actix_web::rt::spawn(async move {
            if stalled.wait().await {
                // Both directions: the server, waiting to write to the socket, wakes to an
                // error and ends the connection (closing its descriptors); the kernel still
                // hands the client what it holds for it, then the end.
                if let Err(e) = socket.shutdown(Shutdown::Both) {
                    tracing::warn!(error = %e, "cannot close a stalled live-quote connection");
                }
            }
        });
    }
    Ok(response.streaming(events(stream, state.stream_heartbeat)))
}

/// A plain TCP connection's socket, as [`keep_socket`] kept it.
#[derive(Clone)]
struct ConnectionSocket(Rc<socket2::Socket>);

/// For actix-web's `on_connect`: keeps a handle on each plain TCP connection's socket, the
/// only way a handler can close its connection. The handle is a second descriptor of the
/// socket, closed with the connection.
pub(crate) fn keep_socket(connection: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match socket2::SockRef::from(tcp).try_clone() {
        Ok(socket) => {
            data.insert(ConnectionSocket(Rc::new(socket)));
        }
        Err(e) => tracing::warn!(
            error = %e,
            "no handle on a connection's socket: a live-quote client that stops reading there \
             keeps its connection"
        ),
    }
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
