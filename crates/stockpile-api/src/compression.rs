//! Content codings of cached reads: which coding a request accepts (RFC 9110 §12.5.3), the
//! ETag of each representation, and the compressed bytes, made once per body.
//!
//! A body is compressed the first time a request wants it in a coding, and the result is kept
//! beside the cached entry in a bounded in-process store keyed by the body's ETag, so a hit in
//! a coding costs what an uncompressed hit costs. The ETag of a compressed representation is
//! the body's with `-br` or `-gzip` inside the quotes: a hash of the body alone, the same on
//! every instance.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use actix_web::http::header::{self, HeaderMap};
use bytes::Bytes;

/// Bodies shorter than this are sent as they are: compressing them saves less than it costs.
pub const MIN_COMPRESSED_LEN: usize = 1024;

/// Brotli quality 10 of 11 and a 4 MiB window. Measured on the cached bodies (`docs/caching.md`):
/// a year of daily history shrinks 3.9× at every quality from 1 to 9 (dense digits leave the
/// fast modes little to find) and 4.9× at 10, for about 15 ms of one core per 27 KB body;
/// quality 11 adds 4 % for three times the CPU. That cost is paid once per body on each
/// instance, on the blocking pool, never by a hit.
const BROTLI_QUALITY: u32 = 10;
const BROTLI_WINDOW_BITS: u32 = 22;
/// gzip level 6, zlib's default: levels above it shrink JSON by little and cost much more.
const GZIP_LEVEL: u32 = 6;

/// How many bytes of compressed representations one process keeps.
const STORE_BYTES: u64 = 64 * 1024 * 1024;

/// A content coding Stockpile sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// Every coding, in order of preference among equal q-values.
    const ALL: [Self; 2] = [Self::Brotli, Self::Gzip];

    /// The `Content-Encoding` token, also the ETag suffix.
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
        }
    }

    fn names(self, coding: &str) -> bool {
        match self {
            Self::Brotli => coding.eq_ignore_ascii_case("br"),
            // RFC 9110 §8.4.1.3: a recipient SHOULD treat x-gzip as gzip.
            Self::Gzip => {
                coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")
            }
        }
    }

    fn compress(self, body: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(body.len() / 4);
        match self {
            Self::Brotli => {
                let mut writer = brotli::CompressorWriter::new(
                    &mut out,
                    body.len().clamp(4096, 1 << 16),
                    BROTLI_QUALITY,
                    BROTLI_WINDOW_BITS,
                );
                // Writing to a Vec cannot fail.
                let _ = writer.write_all(body);
                drop(writer);
            }
            Self::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(GZIP_LEVEL));
                let _ = encoder.write_all(body);
                let _ = encoder.finish();
            }
        }
        Bytes::from(out)
    }
}

/// The coding a request's `Accept-Encoding` prefers among those Stockpile sends, if any.
///
/// No header: none (API.md: the body is sent as it is). Each listed coding has q=1 unless it
/// says otherwise; `q=0` refuses it; `*` gives its q to every coding not named. Among equal
/// q-values `br` wins. Elements with a malformed q-value are ignored.
pub fn preferred(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).peekable();
    values.peek()?;
    let mut named: [Option<u16>; 2] = [None, None];
    let mut any: Option<u16> = None;
    for element in values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let Some(q) = parts.try_fold(1000, |q, parameter| parse_q(parameter, q)) else {
            continue;
        };
        if coding == "*" {
            any = Some(q);
        } else if let Some(index) = Coding::ALL.iter().position(|c| c.names(coding)) {
            named[index] = Some(q);
        }
    }
    let mut best: Option<(Coding, u16)> = None;
    for (coding, q) in Coding::ALL.iter().zip(named) {
        let q = q.or(any).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((*coding, q));
        }
    }
    best.map(|(coding, _)| coding)
}

/// A `q=` parameter as thousandths; other parameters leave `q` as it is. `None` when the
/// q-value is malformed (RFC 9110 §12.4.2: `0` to `1` with at most three decimals).
fn parse_q(parameter: &str, q: u16) -> Option<u16> {
    let (name, value) = parameter.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("q") {
        return Some(q);
    }
    let value = value.trim();
    let (units, decimals) = value.split_once('.').unwrap_or((value, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{decimals:0<3}").parse::<u16>().ok()?;
    match units {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding this body is sent in for a request with these headers: none for short bodies,
/// whose requests (most small hits) are answered without reading `Accept-Encoding` at all.
pub fn chosen(headers: &HeaderMap, body: &[u8]) -> Option<Coding> {
    if body.len() < MIN_COMPRESSED_LEN {
        return None;
    }
    preferred(headers)
}

/// The ETag of the body's representation in `coding`: `"abc"` becomes `"abc-br"`.
/// The body's own ETag is returned as it is, without a copy: that is every uncompressed hit.
pub fn representation_etag(etag: &str, coding: Option<Coding>) -> Cow<'_, str> {
    match (coding, etag.strip_suffix('"')) {
        (Some(coding), Some(open)) => Cow::Owned(format!("{open}-{}\"", coding.token())),
        _ => Cow::Borrowed(etag),
    }
}

/// The ETags of every representation of a body: the body's own and one per coding.
pub fn every_representation_etag(etag: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(None)
        .chain(Coding::ALL.map(Some))
        .map(move |coding| representation_etag(etag, coding).into_owned())
}

type Store = moka::sync::Cache<(Arc<str>, Coding), Bytes, foldhash::fast::RandomState>;

/// One store per process: a representation is a function of the body alone, so every server
/// in the process may share it.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(STORE_BYTES)
            .weigher(|(etag, _): &(Arc<str>, Coding), bytes: &Bytes| {
                u32::try_from(etag.len() + bytes.len()).unwrap_or(u32::MAX)
            })
            // foldhash rather than SipHash, as the first tier's: every compressed hit hashes
            // its ETag here.
            .build_with_hasher(foldhash::fast::RandomState::default())
    })
}

/// The body compressed in `coding`, made at most once per body while the store keeps it
/// (concurrent first requests wait for one compression). Compressing runs on the blocking
/// pool, so the worker's other connections are not held up by it.
pub async fn compressed(etag: &Arc<str>, body: &Bytes, coding: Coding) -> Bytes {
    let key = (Arc::clone(etag), coding);
    if let Some(bytes) = store().get(&key) {
        return bytes;
    }
    let body = body.clone();
    let compress = move || store().get_with(key, || coding.compress(&body));
    match actix_web::web::block(compress.clone()).await {
        Ok(bytes) => bytes,
        // The blocking pool is gone (the server is shutting down): compress here.
        Err(_) => compress(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use actix_web::http::header::HeaderValue;

    use super::*;

    fn accepting(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn prefers(values: &[&str]) -> Option<Coding> {
        preferred(&accepting(values))
    }

    #[test]
    fn negotiation_follows_q_values_and_prefers_br_among_equals() {
        assert_eq!(prefers(&[]), None, "no header: as it is");
        assert_eq!(
            prefers(&[""]),
            None,
            "an empty header accepts identity only"
        );
        assert_eq!(prefers(&["identity"]), None);
        assert_eq!(prefers(&["gzip, deflate, br, zstd"]), Some(Coding::Brotli));
        assert_eq!(prefers(&["gzip"]), Some(Coding::Gzip));
        assert_eq!(prefers(&["x-gzip"]), Some(Coding::Gzip));
        assert_eq!(prefers(&["GZIP;Q=0.5, BR;q=0.4"]), Some(Coding::Gzip));
        assert_eq!(prefers(&["br;q=0, gzip;q=0.001"]), Some(Coding::Gzip));
        assert_eq!(prefers(&["br;q=0, gzip;q=0"]), None);
        assert_eq!(prefers(&["*"]), Some(Coding::Brotli));
        assert_eq!(prefers(&["*;q=0"]), None);
        assert_eq!(
            prefers(&["br;q=0, *"]),
            Some(Coding::Gzip),
            "* stands for those not named"
        );
        assert_eq!(prefers(&["gzip;q=0.8, *;q=0.9"]), Some(Coding::Brotli));
        assert_eq!(
            prefers(&["deflate", "gzip"]),
            Some(Coding::Gzip),
            "header lines combine"
        );
        assert_eq!(prefers(&["gzip;q=1.0, br;q=1"]), Some(Coding::Brotli));
    }

    #[test]
    fn malformed_q_values_are_ignored_not_guessed() {
        for bad in [
            "br;q=2",
            "br;q=1.5",
            "br;q=0.0001",
            "br;q=abc",
            "br;q=-1",
            "br;q=",
        ] {
            assert_eq!(prefers(&[bad]), None, "{bad}");
            assert_eq!(
                prefers(&[&format!("{bad}, gzip")]),
                Some(Coding::Gzip),
                "{bad}"
            );
        }
        assert_eq!(
            prefers(&["br;level=3"]),
            Some(Coding::Brotli),
            "other parameters are not q"
        );
    }

    #[test]
    fn short_bodies_are_sent_as_they_are() {
        let gzip = accepting(&["gzip"]);
        assert_eq!(chosen(&gzip, &[b'a'; MIN_COMPRESSED_LEN - 1]), None);
        assert_eq!(
            chosen(&gzip, &[b'a'; MIN_COMPRESSED_LEN]),
            Some(Coding::Gzip)
        );
        assert_eq!(chosen(&accepting(&[]), &[b'a'; 10_000]), None);
    }

    #[test]
    fn representation_etags_add_the_coding_inside_the_quotes() {
        assert_eq!(representation_etag("\"abc\"", None), "\"abc\"");
        assert_eq!(
            representation_etag("\"abc\"", Some(Coding::Brotli)),
            "\"abc-br\""
        );
        assert_eq!(
            representation_etag("\"abc\"", Some(Coding::Gzip)),
            "\"abc-gzip\""
        );
        assert_eq!(
            every_representation_etag("\"abc\"").collect::<Vec<_>>(),
            ["\"abc\"", "\"abc-br\"", "\"abc-gzip\""]
        );
    }

    #[actix_web::test]
    async fn compressed_bodies_decompress_to_the_body_and_are_made_once() {
        let body = Bytes::from(
            (0..2_000)
                .map(|i| format!("{{\"ticker\":\"T{i}\",\"price\":{i}.25}},"))
                .collect::<String>(),
        );
        let etag: Arc<str> = Arc::from(format!("\"test-{}\"", body.len()));
        let br = compressed(&etag, &body, Coding::Brotli).await;
        let mut plain = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, body);
        let gzip = compressed(&etag, &body, Coding::Gzip).await;
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, body);
        assert!(br.len() * 4 < body.len() && gzip.len() * 4 < body.len());
        // The second request in a coding gets the same bytes, not a second compression.
        assert_eq!(
            compressed(&etag, &body, Coding::Brotli).await.as_ptr(),
            br.as_ptr()
        );
    }
}
