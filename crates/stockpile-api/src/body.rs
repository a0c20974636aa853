//! Request bodies of the writes: read under a size limit, then turned into domain values in
//! two steps, each naming every problem it finds as an entry of the problem's `errors`:
//!
//! 1. the shape: every field that is missing, unknown, given twice or of the wrong JSON type,
//!    named as sent (`name`, `bars[3].volume`);
//! 2. when the shape is right, the domain's rules (`bars[2].low`, `currency`).
//!
//! Only a body that is not JSON at all, or not a JSON object, is a plain 400 without `errors`.
//!
//! Handlers call [`read_json`] only after the [`crate::auth::Admin`] extractor succeeded, which
//! is what puts 401/403 ahead of 413/415.

use std::fmt;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use stockpile_application::FieldError;
use stockpile_domain::{PriceBar, PriceField, StockProfile};
use utoipa::ToSchema;

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
/// arrived within `timeout`) and reads its shape.
///
/// # Errors
/// [`ApiError::UnsupportedMediaType`], [`ApiError::PayloadTooLarge`],
/// [`ApiError::BodyTimeout`], [`ApiError::MalformedBody`] (not a JSON object) or
/// [`ApiError::Invalid`] (every field of the wrong shape).
pub(crate) async fn read_json<T: Body>(
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

/// Reads a body that has been received: JSON, an object, and every field of its shape.
///
/// # Errors
/// [`ApiError::MalformedBody`] for text that is not JSON or JSON that is not an object;
/// [`ApiError::Invalid`] naming every field that is missing, unknown, repeated or mistyped.
pub(crate) fn parse_json<T: Body>(body: &[u8]) -> Result<T, ApiError> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    // serde would read a struct from an array of its fields in order (`["stocks:*"]`); every
    // body of the contract is an object.
    let Json::Object(members) = json else {
        return Err(ApiError::MalformedBody(
            "the body must be a JSON object".to_owned(),
        ));
    };
    let mut errors = Vec::new();
    let body = Fields::read(String::new(), members, &mut errors, T::read);
    match body {
        Some(body) if errors.is_empty() => Ok(body),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// A request body that can be read from the members of a JSON object.
pub(crate) trait Body: Sized {
    /// The body, or `None` when a field could not be read (each one is in the errors).
    fn read(fields: &mut Fields<'_>) -> Option<Self>;
}

/// A JSON value as sent, each object's members in order and a repeated name kept, so that a
/// field given twice is refused rather than silently read as its last value.
#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        // serde_json reads only finite numbers, so this is never `Null`.
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

/// What a field must be, and the message when it is not.
struct Kind<T> {
    read: fn(Json) -> Option<T>,
    message: &'static str,
}

const STRING: Kind<String> = Kind {
    read: |json| match json {
        Json::String(s) => Some(s),
        _ => None,
    },
    message: "must be a string",
};

const NUMBER: Kind<f64> = Kind {
    read: |json| match json {
        Json::Number(n) => n.as_f64(),
        _ => None,
    },
    message: "must be a number",
};

/// What a JSON integer is here, for the OpenAPI document: JSON Schema counts `100.0` as an
/// integer, [`INTEGER`] does not.
pub(crate) const JSON_INTEGER: &str =
    "A JSON integer of at least 0, written without a fraction or an exponent: `1e3` and `100.0` \
     are numbers but not integers here, and are refused.";

/// A JSON integer: `1e3` and `100.0` are numbers, but not integers.
const INTEGER: Kind<i64> = Kind {
    read: |json| match json {
        Json::Number(n) => n.as_i64(),
        _ => None,
    },
    message: "must be a JSON integer (not 1e3 or 100.0) that fits in 64 bits",
};

const ARRAY: Kind<Vec<Json>> = Kind {
    read: |json| match json {
        Json::Array(items) => Some(items),
        _ => None,
    },
    message: "must be an array",
};

/// The members of one JSON object, read field by field; every problem goes to `errors`
/// under the field's full name (`prefix` + name).
pub(crate) struct Fields<'e> {
    prefix: String,
    members: Vec<(String, Json)>,
    errors: &'e mut Vec<FieldError>,
}

impl Fields<'_> {
    /// Reads one object with `read`, then names every member that `read` did not take.
    fn read<T>(
        prefix: String,
        members: Vec<(String, Json)>,
        errors: &mut Vec<FieldError>,
        read: impl FnOnce(&mut Fields<'_>) -> Option<T>,
    ) -> Option<T> {
        let mut fields = Fields {
            prefix,
            members,
            errors,
        };
        let value = read(&mut fields);
        let unknown: Vec<_> = fields.members.drain(..).map(|(name, _)| name).collect();
        for name in unknown {
            fields.error(&name, "is not a field of this object");
        }
        value
    }

    fn error(&mut self, name: &str, message: &str) {
        self.errors
            .push(FieldError::new(format!("{}{name}", self.prefix), message));
    }

    /// The member called `name`, `None` when absent; given twice, it is an error.
    fn take(&mut self, name: &str) -> Result<Option<Json>, ()> {
        let mut found = None;
        let mut repeated = false;
        self.members.retain_mut(|(key, value)| {
            if key != name {
                return true;
            }
            if found.is_some() {
                repeated = true;
            } else {
                found = Some(std::mem::replace(value, Json::Null));
            }
            false
        });
        if repeated {
            self.error(name, "must be given only once");
            return Err(());
        }
        Ok(found)
    }

    /// A field that must be present (and not `null`).
    fn required<T>(&mut self, name: &str, kind: Kind<T>) -> Option<T> {
        match self.take(name) {
            Ok(Some(json)) => self.typed(name, json, kind),
            Ok(None) => {
                self.error(name, "is required");
                None
            }
            Err(()) => None,
        }
    }

    /// A field that may be absent or `null`: `Some(None)` then, `None` when it is unreadable.
    fn optional<T>(&mut self, name: &str, kind: Kind<T>) -> Option<Option<T>> {
        match self.take(name) {
            Ok(None | Some(Json::Null)) => Some(None),
            Ok(Some(json)) => self.typed(name, json, kind).map(Some),
            Err(()) => None,
        }
    }

    fn typed<T>(&mut self, name: &str, json: Json, kind: Kind<T>) -> Option<T> {
        let value = (kind.read)(json);
        if value.is_none() {
            self.error(name, kind.message);
        }
        value
    }

    /// A field holding an array of objects, each read with `read`, named `name[i].field`.
    fn objects<T>(
        &mut self,
        name: &str,
        read: impl Fn(&mut Fields<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.required(name, ARRAY)?;
        let mut values = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, item) in items.into_iter().enumerate() {
            let Json::Object(members) = item else {
                self.error(&format!("{name}[{index}]"), "must be an object");
                complete = false;
                continue;
            };
            let prefix = format!("{}{name}[{index}].", self.prefix);
            match Fields::read(prefix, members, self.errors, &read) {
                Some(value) => values.push(value),
                None => complete = false,
            }
        }
        complete.then_some(values)
    }
}

/// The body of `PUT /api/stocks/{ticker}`.
// The limits of its texts are the domain's (`StockProfile::NAME` and the others); the OpenAPI
// document takes them from there (`openapi.rs`), as it does the bars' limit below.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockProfileBody {
    #[schema(example = "Apple Inc.")]
    pub name: String,
    #[schema(example = "NASDAQ")]
    pub exchange: String,
    #[schema(example = "Information Technology")]
    pub sector: String,
    #[schema(example = "Consumer Electronics")]
    pub industry: Option<String>,
    /// Three upper-case letters; `USD` when absent.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    // Described as a JSON integer in `openapi.rs`, as `volume` is.
    #[schema(minimum = 0)]
    pub market_cap: Option<i64>,
}

impl Body for StockProfileBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let name = fields.required("name", STRING);
        let exchange = fields.required("exchange", STRING);
        let sector = fields.required("sector", STRING);
        let industry = fields.optional("industry", STRING);
        let currency = fields.optional("currency", STRING);
        let market_cap = fields.optional("market_cap", INTEGER);
        Some(Self {
            name: name?,
            exchange: exchange?,
            sector: sector?,
            industry: industry?,
            currency: currency?,
            market_cap: market_cap?,
        })
    }
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
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceUploadBody {
    /// 1 to [`stockpile_domain::MAX_BARS_PER_UPLOAD`] bars, one per date, none after today
    /// (UTC).
    pub bars: Vec<PriceBarBody>,
}

/// One daily bar of an upload: `low ≤ open, close ≤ high` once rounded.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBarBody {
    /// `YYYY-MM-DD`.
    #[schema(example = "2025-11-21", format = Date, value_type = String)]
    pub date: String,
    // The prices' bounds and rounding are described from the domain's constants (`openapi.rs`).
    #[schema(example = 189.12)]
    pub open: f64,
    #[schema(example = 191.5)]
    pub high: f64,
    #[schema(example = 188.0)]
    pub low: f64,
    #[schema(example = 190.25)]
    pub close: f64,
    #[schema(example = 51234567, minimum = 0)]
    pub volume: i64,
}

impl Body for PriceUploadBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let bars = fields.objects("bars", PriceBarBody::read)?;
        Some(Self { bars })
    }
}

impl Body for PriceBarBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let date = fields.required("date", STRING);
        let [open, high, low, close] =
            PriceField::ALL.map(|price| fields.required(price.as_str(), NUMBER));
        let volume = fields.required("volume", INTEGER);
        Some(Self {
            date: date?,
            open: open?,
            high: high?,
            low: low?,
            close: close?,
            volume: volume?,
        })
    }
}

impl PriceUploadBody {
    /// Every bar as a domain value, or every invalid field named `bars[i].field`.
    pub(crate) fn try_into_domain(self) -> Result<Vec<PriceBar>, ApiError> {
        let mut bars = Vec::with_capacity(self.bars.len());
        let mut errors = Vec::new();
        for (index, bar) in self.bars.into_iter().enumerate() {
            match PriceBar::parse(
                &bar.date, bar.open, bar.high, bar.low, bar.close, bar.volume,
            ) {
                Ok(bar) => bars.push(bar),
                Err(bar_errors) => errors.extend(bar_errors.iter().map(|e| {
                    FieldError::new(format!("bars[{index}].{}", e.field()), e.to_string())
                })),
            }
        }
        if errors.is_empty() {
            Ok(bars)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

/// The body of `POST /api/cache/invalidate`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateBody {
    /// A Redis glob pattern (`*`, `?`, `[...]`), 1–256 characters, relative to the prefix.
    #[schema(example = "stocks:list:*", min_length = 1, max_length = 256)]
    pub pattern: String,
}

impl Body for InvalidateBody {
    fn read(fields: &mut Fields<'_>) -> Option<Self> {
        let pattern = fields.required("pattern", STRING)?;
        Some(Self { pattern })
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

    fn fields<T: fmt::Debug>(result: Result<T, ApiError>) -> Vec<String> {
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
        for (volume, ok) in [("1e3", false), ("100.0", false), ("100", true)] {
            let body = format!(
                r#"{{"bars":[{{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":{volume}}}]}}"#
            );
            let result = parse_json::<PriceUploadBody>(body.as_bytes());
            if ok {
                assert!(result.is_ok(), "{body}");
            } else {
                assert_eq!(fields(result), ["bars[0].volume"], "{body}");
            }
        }
    }

    #[test]
    fn bodies_are_objects_not_arrays_of_fields() {
        // Found by fuzzing: serde reads a struct from an array of its fields in order too.
        assert!(parse_json::<InvalidateBody>(br#"{"pattern":"stocks:*"}"#).is_ok());
        assert!(matches!(
            parse_json::<InvalidateBody>(br#" ["stocks:*"]"#),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(matches!(
            parse_json::<StockProfileBody>(br#"["A","X","Y",null,null,1]"#),
            Err(ApiError::MalformedBody(_))
        ));
        let bar = r#"{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1}"#;
        assert!(parse_json::<PriceUploadBody>(format!(r#"{{"bars":[{bar}]}}"#).as_bytes()).is_ok());
        assert_eq!(
            fields(parse_json::<PriceUploadBody>(
                br#"{"bars":[["2025-01-02",1,1,1,1,1]]}"#
            )),
            ["bars[0]"]
        );
        assert_eq!(
            fields(parse_json::<PriceUploadBody>(br#"{"bars":[{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1,"x":0}]}"#)),
            ["bars[0].x"]
        );
    }

    /// Issue 14: every kind of shape problem is an entry of `errors` naming its field, each
    /// body alike; only text that is not a JSON object is a plain 400.
    #[test]
    fn every_shape_problem_names_its_field() {
        let profile = |body: &str| parse_json::<StockProfileBody>(body.as_bytes()).map(drop);
        let upload = |body: &str| parse_json::<PriceUploadBody>(body.as_bytes()).map(drop);
        let invalidate = |body: &str| parse_json::<InvalidateBody>(body.as_bytes()).map(drop);
        let bar = r#"{"date":"2025-01-02","open":1,"high":1,"low":1,"close":1,"volume":1}"#;
        let cases: [(&str, Result<(), ApiError>, &[&str]); 14] = [
            (
                "missing",
                profile(r#"{"name":"x"}"#),
                &["exchange", "sector"],
            ),
            (
                "unknown",
                profile(r#"{"name":"x","exchange":"X","sector":"Y","foo":1}"#),
                &["foo"],
            ),
            (
                "wrong types",
                profile(r#"{"name":1,"exchange":"X","sector":null,"market_cap":3e12}"#),
                &["name", "sector", "market_cap"],
            ),
            (
                "given twice",
                profile(r#"{"name":"x","name":"y","exchange":"X","sector":"Y"}"#),
                &["name"],
            ),
            ("bars missing", upload(r#"{}"#), &["bars"]),
            ("bars not an array", upload(r#"{"bars":{}}"#), &["bars"]),
            (
                "a bar's field missing",
                upload(&format!(
                    r#"{{"bars":[{bar},{bar},{bar},{}]}}"#,
                    bar.replace(r#","volume":1"#, "")
                )),
                &["bars[3].volume"],
            ),
            (
                "a bar's field of the wrong type",
                upload(&format!(
                    r#"{{"bars":[{bar},{}]}}"#,
                    bar.replace(r#""open":1"#, r#""open":"1""#)
                )),
                &["bars[1].open"],
            ),
            (
                "an unknown field beside the bars",
                upload(&format!(r#"{{"bars":[{bar}],"source":"x"}}"#)),
                &["source"],
            ),
            ("pattern missing", invalidate("{}"), &["pattern"]),
            (
                "pattern not a string",
                invalidate(r#"{"pattern":7}"#),
                &["pattern"],
            ),
            (
                "pattern beside another",
                invalidate(r#"{"pattern":"a","x":1}"#),
                &["x"],
            ),
            (
                "pattern twice",
                invalidate(r#"{"pattern":"a","pattern":"b"}"#),
                &["pattern"],
            ),
            (
                "shape problems in several bars",
                upload(r#"{"bars":[{"date":1},7]}"#),
                &[
                    "bars[0].date",
                    "bars[0].open",
                    "bars[0].high",
                    "bars[0].low",
                    "bars[0].close",
                    "bars[0].volume",
                    "bars[1]",
                ],
            ),
        ];
        for (what, result, expected) in cases {
            assert_eq!(fields(result), expected, "{what}");
        }
        for malformed in ["", "{", r#"{"name": "#, "[]", "\"x\"", "null"] {
            assert!(
                matches!(profile(malformed), Err(ApiError::MalformedBody(_))),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn profiles_report_their_fields() {
        let body: StockProfileBody = parse_json(
            br#"{"name":"","exchange":"X","sector":"Y","currency":"usd","industry":null}"#,
        )
        .unwrap();
        assert_eq!(body.industry, None);
        assert_eq!(fields(body.try_into_domain()), ["name", "currency"]);
    }
}
