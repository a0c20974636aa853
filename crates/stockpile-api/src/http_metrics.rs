//! HTTP traffic counters and the Prometheus text exposition of `/metrics`, written by hand:
//! the format is small and stable, and a registry crate would add a dependency for a page.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use stockpile_application::cache_aside::BreakerState;
use stockpile_application::cache_keys::KeyFamily;
use stockpile_application::metrics::{CacheEvent, CacheMetrics};
use stockpile_application::ports::CacheFaults;
use stockpile_application::StreamCounters;

/// Upper bounds of the latency histogram, in seconds: from a cache hit to a slow cold query.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The backends a cache can be served by, so the gauge always lists all three.
const BACKENDS: [&str; 3] = ["redis", "memory", "none"];

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (cumulative when written).
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A route label: a resource's template (static), or a pattern actix matched for a request no
/// resource labelled. Counting a request then allocates nothing in the common case.
type Route = Cow<'static, str>;

#[derive(Debug, Default)]
struct Counters {
    /// Keyed by (method, route, status); a `BTreeMap` so the page is stably ordered.
    requests: BTreeMap<(&'static str, Route, u16), u64>,
    durations: BTreeMap<(&'static str, Route), Histogram>,
}

/// This process's HTTP counters, shared by every worker.
///
/// A `std::sync::Mutex`, not Tokio's: it is held for a map update only, never across an
/// `.await`. Labels are bounded (route templates, known methods), so the maps stay small.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    counters: Mutex<Counters>,
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn observe(&self, method: &'static str, route: Route, status: u16, elapsed: Duration) {
        // A poisoned lock only means another thread panicked mid-update; counts stay usable.
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counters
            .requests
            .entry((method, route.clone(), status))
            .or_default() += 1;
        let histogram = counters.durations.entry((method, route)).or_default();
        let seconds = elapsed.as_secs_f64();
        if let Some(slot) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[slot] += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The whole `/metrics` page: HTTP traffic, cache counters by family, the serving
    /// backend and Redis's faults, the database breaker, and the live-quote streams.
    pub fn render(
        &self,
        cache: &CacheMetrics,
        (backend, faults): (&str, CacheFaults),
        breaker: (BreakerState, u64),
        streams: StreamCounters,
    ) -> String {
        let mut out = String::with_capacity(4096);
        self.render_http(&mut out);
        render_cache(&mut out, cache, backend);
        render_faults(&mut out, faults);
        render_breaker(&mut out, breaker);
        render_streams(&mut out, streams);
        out
    }

    fn render_http(&self, out: &mut String) {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        header(
            out,
            "stockpile_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        for ((method, route, status), count) in &counters.requests {
            let _ = writeln!(
                out,
                "stockpile_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route)
            );
        }
        header(
            out,
            "stockpile_http_request_duration_seconds",
            "histogram",
            "Time from receiving a request to having its response, by method and route template.",
        );
        for ((method, route), histogram) in &counters.durations {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "stockpile_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "stockpile_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "stockpile_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "stockpile_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
    }
}

fn render_streams(out: &mut String, streams: StreamCounters) {
    header(
        out,
        "stockpile_stream_clients",
        "gauge",
        "Live-quote streams open now.",
    );
    let _ = writeln!(out, "stockpile_stream_clients {}", streams.open);
    header(
        out,
        "stockpile_stream_events_total",
        "counter",
        "Events handed to live-quote streams (one per stream an event went to).",
    );
    let _ = writeln!(out, "stockpile_stream_events_total {}", streams.events_sent);
}

fn render_breaker(out: &mut String, (state, times_opened): (BreakerState, u64)) {
    header(
        out,
        "stockpile_database_circuit_open",
        "gauge",
        "1 while loads are refused at once because the database is failing.",
    );
    let _ = writeln!(
        out,
        "stockpile_database_circuit_open {}",
        u8::from(state == BreakerState::Open)
    );
    header(
        out,
        "stockpile_database_circuit_opened_total",
        "counter",
        "Times the database was found failing and loads started being refused.",
    );
    let _ = writeln!(
        out,
        "stockpile_database_circuit_opened_total {times_opened}"
    );
}

fn render_cache(out: &mut String, cache: &CacheMetrics, backend: &str) {
    let families = [
        (
            "stockpile_cache_hits_total",
            CacheEvent::Hit,
            "Reads answered from the cache.",
        ),
        (
            "stockpile_cache_misses_total",
            CacheEvent::Miss,
            "Reads the cache could not answer.",
        ),
        (
            "stockpile_cache_errors_total",
            CacheEvent::Error,
            "Cache operations that failed.",
        ),
        (
            "stockpile_cache_loads_total",
            CacheEvent::Load,
            "Answers computed from the database on a miss.",
        ),
    ];
    for (name, event, help) in families {
        header(out, name, "counter", help);
        for family in KeyFamily::ALL {
            let _ = writeln!(
                out,
                "{name}{{family=\"{}\"}} {}",
                family.as_str(),
                cache.count(family, event)
            );
        }
    }
    header(
        out,
        "stockpile_cache_backend",
        "gauge",
        "1 for the cache backend serving now, 0 for the others.",
    );
    for known in BACKENDS {
        let serving = u8::from(known == backend);
        let _ = writeln!(
            out,
            "stockpile_cache_backend{{backend=\"{known}\"}} {serving}"
        );
    }
    if !BACKENDS.contains(&backend) {
        // An adapter this page does not know yet still shows up rather than vanishing.
        let _ = writeln!(
            out,
            "stockpile_cache_backend{{backend=\"{}\"}} 1",
            escape(backend)
        );
    }
}

fn render_faults(out: &mut String, faults: CacheFaults) {
    for (name, value, help) in [
        (
            "stockpile_cache_failed_commands_total",
            faults.failed_commands,
            "Redis commands that failed or missed their timeout, each answered from the database.",
        ),
        (
            "stockpile_cache_fallbacks_total",
            faults.fallbacks,
            "Times in-process memory took over because Redis was found unreachable.",
        ),
        (
            "stockpile_cache_unconfirmed_invalidations_total",
            faults.unconfirmed_invalidations,
            "Invalidations some other instance did not confirm in time; it may have served the older entry from memory.",
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_complete() {
        let metrics = HttpMetrics::default();
        metrics.observe(
            "GET",
            "/api/stocks/{ticker}".into(),
            200,
            Duration::from_millis(3),
        );
        metrics.observe(
            "GET",
            "/api/stocks/{ticker}".into(),
            404,
            Duration::from_secs(10),
        );
        let faults = CacheFaults {
            failed_commands: 7,
            fallbacks: 1,
            unconfirmed_invalidations: 2,
        };
        let streams = StreamCounters {
            open: 3,
            events_sent: 41,
        };
        let page = metrics.render(
            &CacheMetrics::default(),
            ("memory", faults),
            (BreakerState::Open, 2),
            streams,
        );
        assert!(page.contains("stockpile_stream_clients 3\n"), "{page}");
        assert!(
            page.contains("stockpile_stream_events_total 41\n"),
            "{page}"
        );
        assert!(
            page.contains("stockpile_database_circuit_open 1\n"),
            "{page}"
        );
        assert!(page.contains("stockpile_cache_failed_commands_total 7\n"));
        assert!(page.contains("stockpile_cache_fallbacks_total 1\n"));
        assert!(page.contains("stockpile_cache_unconfirmed_invalidations_total 2\n"));
        assert!(
            page.contains("stockpile_database_circuit_opened_total 2\n"),
            "{page}"
        );
        assert!(page.contains(
            "stockpile_http_requests_total{method=\"GET\",route=\"/api/stocks/{ticker}\",status=\"404\"} 1"
        ));
        assert!(page.contains("route=\"/api/stocks/{ticker}\",le=\"0.0025\"} 0"));
        assert!(page.contains("route=\"/api/stocks/{ticker}\",le=\"0.005\"} 1"));
        assert!(page.contains("route=\"/api/stocks/{ticker}\",le=\"5\"} 1"));
        assert!(page.contains("route=\"/api/stocks/{ticker}\",le=\"+Inf\"} 2"));
        assert!(page.contains("stockpile_cache_backend{backend=\"memory\"} 1"));
        assert!(page.contains("stockpile_cache_backend{backend=\"redis\"} 0"));
        assert!(page.contains("stockpile_cache_loads_total{family=\"leaderboard\"} 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
