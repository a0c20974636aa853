//! `stockpile import`: daily bars from a CSV in the common
//! `Date,Open,High,Low,Close,Adj Close,Volume` layout, all or nothing.

use std::io::Read;

use chrono::NaiveDate;
use stockpile_domain::{Price, PriceBar};

const EXPECTED_HEADER: [&str; 7] = [
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj close",
    "volume",
];

/// A rejected row: its line number in the file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    pub line: u64,
    pub reason: String,
}

/// Why a file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the header must be Date,Open,High,Low,Close,Adj Close,Volume, found {0}")]
    Header(String),
    #[error("could not read the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{} row(s) rejected, nothing imported:\n{}", .0.len(), .0.iter().map(|r| format!("  line {}: {}", r.line, r.reason)).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RejectedRow>),
}

fn parse_price(field: &str, name: &str) -> Result<Price, String> {
    let value: f64 = field
        .trim()
        .parse()
        .map_err(|_| format!("{name} '{field}' is not a number"))?;
    Price::from_f64(value).map_err(|e| format!("{name}: {e}"))
}

fn parse_row(record: &csv::StringRecord) -> Result<PriceBar, String> {
    if record.len() != 7 {
        return Err(format!("expected 7 fields, found {}", record.len()));
    }
    let date = NaiveDate::parse_from_str(record[0].trim(), "%Y-%m-%d")
        .map_err(|_| format!("date '{}' is not YYYY-MM-DD", &record[0]))?;
    let open = parse_price(&record[1], "open")?;
    let high = parse_price(&record[2], "high")?;
    let low = parse_price(&record[3], "low")?;
    let close = parse_price(&record[4], "close")?;
    let volume: i64 = record[6]
        .trim()
        .parse()
        .map_err(|_| format!("volume '{}' is not a whole number", &record[6]))?;
    PriceBar::new(date, open, high, low, close, volume).map_err(|e| e.to_string())
}

/// Every bar of the file, or every rejected row by line number.
///
/// # Errors
/// [`ImportError`] for a wrong header or any bad row (all of them listed).
pub fn read_bars(input: impl Read) -> Result<Vec<PriceBar>, ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if header != EXPECTED_HEADER {
        return Err(ImportError::Header(header.join(",")));
    }
    let mut bars = Vec::new();
    let mut rejected = Vec::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, csv::Position::line);
        match parse_row(&record) {
            Ok(bar) => bars.push(bar),
            Err(reason) => rejected.push(RejectedRow { line, reason }),
        }
    }
    if rejected.is_empty() {
        Ok(bars)
    } else {
        Err(ImportError::Rows(rejected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_layout() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n2025-11-20,10,12,9,11,10.9,1000\n2025-11-21,11,11.5,10.25,11.123456,11,2000\n";
        let bars = read_bars(csv.as_bytes()).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[1].close().units(), 111_235);
        assert_eq!(bars[1].volume(), 2000);
    }

    #[test]
    fn names_every_bad_row_by_line() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n2025-11-19,10,12,9,11,11,1\n2025-13-01,10,12,9,11,11,1\n2025-11-20,10,12,9,13,13,1\n2025-11-21,10,12,9,11,11,1.5\n";
        let Err(ImportError::Rows(rows)) = read_bars(csv.as_bytes()) else {
            panic!("expected rejected rows")
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(rows[0].reason.contains("date"));
        assert!(rows[2].reason.contains("volume"));
    }

    #[test]
    fn rejects_another_layout() {
        assert!(matches!(
            read_bars("date,close\n".as_bytes()),
            Err(ImportError::Header(_))
        ));
    }
}
