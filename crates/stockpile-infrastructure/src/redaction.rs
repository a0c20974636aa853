//! The one rule for hiding the secrets of a connection URL (`DATABASE_URL`, `REDIS_URL`) in log
//! lines, `Debug` output and error texts.
//!
//! Hidden, each replaced by `***`:
//! - the password of the user-info (`redis://user:secret@host` → `redis://user:***@host`), and
//!   all of the user-info when it has no `:` (`rediss://secret@host` → `rediss://***@host`):
//!   by the URL standard that is a user name, but it is where a password lands when someone
//!   forgets the colon, and a user name is no loss to a log line;
//! - the value of a query parameter that carries a password, whatever its case or
//!   percent-encoding: `pass`, `password` and any name containing `password` (`sslpassword`),
//!   as in `postgres://u@h/db?password=secret` or `redis+unix:///run/redis.sock?pass=secret`;
//! - all of a value that is not a URL (`hunter2`), or that has no `//` but an `@`
//!   (`user:secret@host`): which part is secret cannot be told, so none of it is shown.
//!
//! The user-info ends at the last `@` before the query (`?`) or fragment (`#`), so a password
//! holding `@`, `:` or `/` is hidden whole; `?` and `#` must be percent-encoded in a password, as
//! every URL parser requires.

use std::ops::Range;

/// What stands in for a hidden part.
const MASK: &str = "***";

/// `url` with every secret in it replaced by `***`; see the module's documentation for which.
pub fn redact_url(url: &str) -> String {
    let mut redacted = String::with_capacity(url.len());
    let mut shown_from = 0;
    for secret in secret_spans(url) {
        redacted.push_str(&url[shown_from..secret.start]);
        redacted.push_str(MASK);
        shown_from = secret.end;
    }
    redacted.push_str(&url[shown_from..]);
    redacted
}

/// A URL and its redacted form, kept to scrub its secrets from messages that may quote them
/// (a driver's error text, say).
#[derive(Clone, PartialEq, Eq)]
pub struct UrlSecrets {
    url: String,
    redacted: String,
    /// The non-empty hidden parts, as written and percent-decoded, longest first.
    secrets: Vec<String>,
}

impl UrlSecrets {
    pub fn new(url: &str) -> Self {
        let mut secrets = Vec::new();
        for span in secret_spans(url) {
            let written = &url[span];
            if written.is_empty() {
                continue;
            }
            let decoded = percent_decode(written);
            if decoded != written && !decoded.is_empty() {
                secrets.push(decoded);
            }
            secrets.push(written.to_owned());
        }
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Self {
            url: url.to_owned(),
            redacted: redact_url(url),
            secrets,
        }
    }

    /// The URL as it may be shown.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// These secrets, and also `password` (one given apart from the URL, as `REDIS_PASSWORD`).
    #[must_use]
    pub fn hiding(mut self, password: Option<&str>) -> Self {
        if let Some(password) = password.filter(|password| !password.is_empty()) {
            self.secrets.push(password.to_owned());
            self.secrets
                .sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        }
        self
    }

    /// `message` with the URL replaced by its redacted form and every hidden part, as written
    /// or decoded, by `***`.
    pub fn scrub(&self, message: &str) -> String {
        let mut message = message.replace(&self.url, &self.redacted);
        for secret in &self.secrets {
            message = message.replace(secret.as_str(), MASK);
        }
        message
    }
}

impl std::fmt::Debug for UrlSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Where the secrets of `url` are, in order and not overlapping.
fn secret_spans(url: &str) -> Vec<Range<usize>> {
    let Some(authority_start) = url.find("://").map(|i| i + 3) else {
        return if has_scheme(url) && !url.contains('@') {
            // `sqlite:stockpile.db?mode=rwc`: no authority, perhaps a query.
            query_spans(url, 0)
        } else {
            let everything = 0..url.len();
            vec![everything]
        };
    };
    let mut spans = Vec::new();
    let rest = &url[authority_start..];
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..before_query].rfind('@') {
        let user_info = &rest[..at];
        let start = authority_start + user_info.find(':').map_or(0, |colon| colon + 1);
        spans.push(start..authority_start + at);
    }
    spans.extend(query_spans(url, authority_start));
    spans
}

/// The values of the password parameters in the query of `url`, which starts at the first `?`
/// at or after `from` (and ends at a `#`).
fn query_spans(url: &str, from: usize) -> Vec<Range<usize>> {
    let Some(query_start) = url[from..].find('?').map(|i| from + i + 1) else {
        return Vec::new();
    };
    let query_end = url[query_start..]
        .find('#')
        .map_or(url.len(), |i| query_start + i);
    let mut spans = Vec::new();
    let mut pair_start = query_start;
    for pair in url[query_start..query_end].split(['&', ';']) {
        if let Some((name, _)) = pair.split_once('=') {
            if is_password_parameter(name) {
                spans.push(pair_start + name.len() + 1..pair_start + pair.len());
            }
        }
        pair_start += pair.len() + 1;
    }
    spans
}

fn is_password_parameter(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase();
    name == "pass" || name.contains("password")
}

/// Whether `value` starts with a URL scheme and its `:` (`sqlite:`).
fn has_scheme(value: &str) -> bool {
    value.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// `%XX` escapes decoded (`+` left as it is); invalid escapes and non-UTF-8 results are kept
/// as written.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_password_is_hidden() {
        // (url, redacted)
        let cases = [
            // Nothing secret.
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "sqlite://stockpile.db?mode=rwc",
                "sqlite://stockpile.db?mode=rwc",
            ),
            (
                "sqlite:stockpile.db?mode=rwc",
                "sqlite:stockpile.db?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            // The user-info's password.
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "redis://app:hunter2@cache:6379",
                "redis://app:***@cache:6379",
            ),
            (
                "postgres://app:hunter2@db:5432/stockpile",
                "postgres://app:***@db:5432/stockpile",
            ),
            ("redis://app:p@ss:w0rd@cache/1", "redis://app:***@cache/1"),
            ("redis://app:pa/ss@cache/1", "redis://app:***@cache/1"),
            ("redis://app:@cache", "redis://app:***@cache"),
            // A user-info without a colon.
            ("rediss://hunter2@cache", "rediss://***@cache"),
            ("postgres://u@h/db", "postgres://***@h/db"),
            ("redis://@cache", "redis://***@cache"),
            // A password as a query parameter, in any case and encoding.
            (
                "postgres://u@h/db?password=hunter2",
                "postgres://***@h/db?password=***",
            ),
            ("redis://h?password=hunter2", "redis://h?password=***"),
            (
                "redis://h/0?PASSWORD=hunter2&db=1",
                "redis://h/0?PASSWORD=***&db=1",
            ),
            ("redis://h/0?Password=hunter2", "redis://h/0?Password=***"),
            (
                "redis://h/0?pass%77ord=hunter2",
                "redis://h/0?pass%77ord=***",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "postgres://h/db?sslmode=require&sslpassword=hunter2#x",
                "postgres://h/db?sslmode=require&sslpassword=***#x",
            ),
            (
                "postgres://h/db?user=u;password=hunter2",
                "postgres://h/db?user=u;password=***",
            ),
            (
                "sqlite:db.sqlite?password=hunter2",
                "sqlite:db.sqlite?password=***",
            ),
            (
                "postgres://u:one@h/db?password=two",
                "postgres://u:***@h/db?password=***",
            ),
            // Not a URL.
            ("hunter2", "***"),
            ("", "***"),
            ("user:hunter2@host", "***"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
            let secrets = UrlSecrets::new(url);
            assert_eq!(secrets.redacted(), redacted, "{url}");
            assert_eq!(format!("{secrets:?}"), redacted, "{url}");
        }
    }

    #[test]
    fn scrubbing_removes_the_url_and_each_secret_as_written_or_decoded() {
        let secrets = UrlSecrets::new("postgres://app:p%40ss@db/x?password=qu%3Dery");
        let message = "connect postgres://app:p%40ss@db/x?password=qu%3Dery failed: \
                       bad password p@ss, p%40ss or qu=ery";
        let scrubbed = secrets.scrub(message);
        for secret in ["p@ss", "p%40ss", "qu=ery", "qu%3Dery"] {
            assert!(!scrubbed.contains(secret), "{secret}: {scrubbed}");
        }
        assert!(
            scrubbed.contains("postgres://app:***@db/x?password=***"),
            "{scrubbed}"
        );
        assert_eq!(
            UrlSecrets::new("hunter2").scrub("no hunter2 here"),
            "no *** here"
        );
        assert_eq!(
            UrlSecrets::new("redis://h/0").scrub("as it was"),
            "as it was"
        );
    }
}
