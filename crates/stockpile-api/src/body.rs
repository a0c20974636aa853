//! Request bodies of the writes: read under a size limit, parsed strictly (unknown fields are
//! errors) and turned into domain values once, with every invalid field named.
//!
//! Handlers call [`read_json`] only after the [`crate::auth::Admin`] extractor succeeded, which
//! is what puts 401/403 ahead of 413/415.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use stockpile_application::FieldError;
use stockpile_domain::{BarError, Price, PriceBar, StockProfile};
use utoipa::ToSchema;

use crate::params::parse_iso_date;
use crate::problem::ApiError;

/// The largest request body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// True when the request says its body is `application/json` (parameters such as
/// `charset=utf-8` allowed; `application/problem+json` and other suffixes are not requests we take).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body (415 unless JSON, 413 past [`MAX_BODY_BYTES`], 408 when it has not all
/// arrived within `timeout`) and deserialises it.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`], [`ApiError::PayloadTooLarge`],
/// [`ApiError::BodyTimeout`] or [`ApiError::MalformedBody`] (bad JSON, unknown field, wrong
/// type).
pub(crate) async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    timeout: Duration,
) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A declared length over the limit is refused without reading a byte of it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let body = actix_web::rt::time::timeout(timeout, read_limited(payload))
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))??;
    parse_json(&body)
}

/// The whole body, refused as soon as it grows past [`MAX_BODY_BYTES`].
async fn read_limited(mut payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::MalformedBody(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Deserialises a body that has been read: bad JSON, an unknown field or a wrong type is a 400.
///
/// # Errors
/// [`ApiError::MalformedBody`].
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: &dyn std::fmt::Display| {
        ApiError::MalformedBody(format!("the body is not valid for this endpoint: {e}"))
    };
    // serde would also read a struct from an array of its fields in order (`["stocks:*"]`);
    // every body of the contract is an object.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|b| *b != b'{') {
        return Err(malformed(&"expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| malformed(&e))
}

/// The bars of an upload, each of which must be a JSON object (see [`parse_json`]).
fn bar_objects<'de, D>(deserializer: D) -> Result<Vec<PriceBarBody>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Vec::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?
        .into_iter()
        .map(|bar| serde_json::from_value(serde_json::Value::Object(bar)))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// The body of `PUT /api/stocks/{ticker}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockProfileBody {
    /// 1–200 characters.
    #[schema(example = "Apple Inc.", min_length = 1, max_length = 200)]
    pub name: String,
    /// 1–32 characters.
    #[schema(example = "NASDAQ", min_length = 1, max_length = 32)]
    pub exchange: String,
    /// 1–64 characters.
    #[schema(example = "Information Technology", min_length = 1, max_length = 64)]
    pub sector: String,
    /// At most 128 characters.
    #[schema(example = "Consumer Electronics", max_length = 128)]
    pub industry: Option<String>,
    /// Three upper-case letters; `USD` when absent.
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// A JSON integer of at least 0.
    #[schema(minimum = 0)]
    pub market_cap: Option<i64>,
}

impl StockProfileBody {
    pub(crate) fn try_into_domain(self) -> Result<StockProfile, ApiError> {
        StockProfile::new(
            self.name,
            self.exchange,
            self.sector,
            self.industry,
            self.currency.as_deref(),
            self.market_cap,
        )
        .map_err(|errors| {
            ApiError::Invalid(
                errors
                    .iter()
                    .map(|e| FieldError::new(e.field(), e.to_string()))
                    .collect(),
            )
        })
    }
}

/// The body of `POST /api/stocks/{ticker}/prices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceUploadBody {
    /// 1–10,000 bars, one per date, none after today (UTC).
    #[schema(min_items = 1, max_items = 10000)]
    #[serde(deserialize_with = "bar_objects")]
    pub bars: Vec<PriceBarBody>,
}

/// One daily bar of an upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBarBody {
    /// `YYYY-MM-DD`.
    #[schema(example = "2025-11-21", format = Date, value_type = String)]
    pub date: String,
    /// More than 4 decimals are rounded half-to-even; must stay above 0 after rounding.
    #[schema(example = 189.12)]
    pub open: f64,
    #[schema(example = 191.5)]
    pub high: f64,
    #[schema(example = 188.0)]
    pub low: f64,
    #[schema(example = 190.25)]
    pub close: f64,
    /// A JSON integer (`1e3` and `100.0` are refused).
    #[schema(example = 51234567, minimum = 0)]
    pub volume: i64,
}

impl PriceUploadBody {
    /// Every bar as a domain value, or every invalid field named `bars[i].field`.
    pub(crate) fn try_into_domain(self) -> Result<Vec<PriceBar>, ApiError> {
        let mut bars = Vec::with_capacity(self.bars.len());
        let mut errors = Vec::new();
        for (index, bar) in self.bars.into_iter().enumerate() {
            match bar.try_into_domain(index) {
                Ok(bar) => bars.push(bar),
                Err(mut bar_errors) => errors.append(&mut bar_errors),
            }
        }
        if errors.is_empty() {
            Ok(bars)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

impl PriceBarBody {
    fn try_into_domain(self, index: usize) -> Result<PriceBar, Vec<FieldError>> {
        let field = |name: &str| format!("bars[{index}].{name}");
        let mut errors = Vec::new();
        let date = parse_iso_date(&self.date);
        if date.is_none() {
            errors.push(FieldError::new(
                field("date"),
                "must be a calendar date written YYYY-MM-DD",
            ));
        }
        let mut price = |name: &str, value: f64| {
            Price::from_f64(value)
                .map_err(|e| errors.push(FieldError::new(field(name), e.to_string())))
                .ok()
        };
        let open = price("open", self.open);
        let high = price("high", self.high);
        let low = price("low", self.low);
        let close = price("close", self.close);
        // Each rule is judged on its own, so that a bad date or price hides no other problem.
        if let (Some(open), Some(high), Some(low), Some(close)) = (open, high, low, close) {
            // Name the bound a client would fix: the low when it is above open or close.
            let crossed = if low > open || low > close {
                Some("low")
            } else if open > high || close > high {
                Some("high")
            } else {
                None
            };
            if let Some(name) = crossed {
                errors.push(FieldError::new(
                    field(name),
                    BarError::Inconsistent.to_string(),
                ));
            }
        }
        if self.volume < 0 {
            errors.push(FieldError::new(
                field("volume"),
                BarError::NegativeVolume.to_string(),
            ));
        }
        match (date, open, high, low, close) {
            (Some(date), Some(open), Some(high), Some(low), Some(close)) if errors.is_empty() => {
                // Both rules of `PriceBar::new` passed above, so this is never an error.
                PriceBar::new(date, open, high, low, close, self.volume)
                    .map_err(|e| vec![FieldError::new(format!("bars[{index}]"), e.to_string())])
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(open: f64, high: f64, low: f64, close: f64, volume: i64) -> PriceBarBody {
        PriceBarBody {
            date: "2025-01-02".into(),
            open,
            high,
            low,
            close,
            volume,
        }
    }

    fn fields(result: Result<Vec<PriceBar>, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_every_invalid_field_of_every_bar() {
        let mut undated = bar(1.0, 2.0, 0.5, 1.5, 10);
        undated.date = "2025-1-2".into();
        let body = PriceUploadBody {
            bars: vec![
                bar(1.0, 2.0, 0.5, 1.5, 10),
                bar(0.00004, 2.0, 0.5, 1.5, 10),
                bar(1.0, 2.0, 1.2, 1.5, 10),
                bar(1.0, 0.9, 0.5, 0.8, 10),
                bar(1.0, 2.0, 0.5, 1.5, -1),
                undated,
            ],
        };
        assert_eq!(
            fields(body.try_into_domain()),
            [
                "bars[1].open",
                "bars[2].low",
                "bars[3].high",
                "bars[4].volume",
                "bars[5].date"
            ]
        );
    }

    #[test]
    fn one_bad_field_hides_no_other() {
        // Found by fuzzing: a bad date hid prices that contradict each other, and a bad price
        // hid a negative volume.
        let mut undated = bar(1.0, 2.0, 3.0, 1.5, 10);
        undated.date = String::new();
        let body = PriceUploadBody {
            bars: vec![
                undated,
                bar(0.0, 2.0, 0.5, 1.5, -1),
                bar(1.0, 0.9, 0.5, 0.8, -1),
            ],
        };
        assert_eq!(
            fields(body.try_into_domain()),
            [
                "bars[0].date",
                "bars[0].low",
                "bars[1].open",
                "bars[1].volume",
                "bars[2].high",
                "bars[2].volume"
            ]
        );
    }

    #[test]
    fn prices_are_rounded_before_the_checks() {
        let body = PriceUploadBody {
            bars: vec![bar(1.00005, 1.00005, 1.00005, 1.00005, 0)],
        };
        let bars = body.try_into_domain().unwrap();
        assert_eq!(bars[0].open().units(), 10_000);
    }

    #[test]
    fn volumes_must_be_json_integers() {
        for body in [
            r#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1e3}]}"#,
            r#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":100.0}]}"#,
        ] {
            assert!(
                serde_json::from_str::<PriceUploadBody>(body).is_err(),
                "{body}"
            );
        }
        let ok =
            r#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":100}]}"#;
        assert!(serde_json::from_str::<PriceUploadBody>(ok).is_ok());
    }

    #[test]
    fn bodies_are_objects_not_arrays_of_fields() {
        use crate::handlers::cache_admin::InvalidateBody;
        // Found by fuzzing: serde reads a struct from an array of its fields in order too.
        assert!(parse_json::<InvalidateBody>(br#"{"pattern":"stocks:*"}"#).is_ok());
        assert!(parse_json::<InvalidateBody>(br#" ["stocks:*"]"#).is_err());
        assert!(parse_json::<StockProfileBody>(br#"["A","X","Y",null,null,1]"#).is_err());
        let bar = r#"{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1}"#;
        assert!(parse_json::<PriceUploadBody>(format!(r#"{{"bars":[{bar}]}}"#).as_bytes()).is_ok());
        assert!(parse_json::<PriceUploadBody>(br#"{"bars":[["2025-01-02",1,1,1,1,1]]}"#).is_err());
        assert!(parse_json::<PriceUploadBody>(br#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1,"x":0}]}"#).is_err());
    }

    #[test]
    fn profiles_report_their_fields() {
        let body: StockProfileBody =
            serde_json::from_str(r#"{"name":"","exchange":"X","sector":"Y","currency":"usd"}"#)
                .unwrap();
        match body.try_into_domain() {
            Err(ApiError::Invalid(errors)) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "currency"]);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert!(serde_json::from_str::<StockProfileBody>(
            r#"{"name":"A","exchange":"X","sector":"Y","extra":1}"#
        )
        .is_err());
    }
}
