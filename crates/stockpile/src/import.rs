//! `stockpile import`: daily bars from a CSV in the common
//! `Date,Open,High,Low,Close,Adj Close,Volume` layout, all or nothing.

use std::io::Read;

use stockpile_domain::PriceBar;

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

fn parse_number<T: std::str::FromStr>(field: &str, name: &str, what: &str) -> Result<T, String> {
    field
        .trim()
        .parse()
        .map_err(|_| format!("{name} '{field}' is not {what}"))
}

/// A row as the domain's bar, or every problem of the row in one line.
fn parse_row(record: &csv::StringRecord) -> Result<PriceBar, String> {
    if record.len() != 7 {
        return Err(format!("expected 7 fields, found {}", record.len()));
    }
    let number = |index: usize, name: &str| parse_number::<f64>(&record[index], name, "a number");
    let fields = (
        number(1, "open"),
        number(2, "high"),
        number(3, "low"),
        number(4, "close"),
        parse_number::<i64>(&record[6], "volume", "a whole number"),
    );
    let (Ok(open), Ok(high), Ok(low), Ok(close), Ok(volume)) = fields else {
        let (open, high, low, close, volume) = fields;
        let unreadable = [open.err(), high.err(), low.err(), close.err(), volume.err()];
        return Err(unreadable
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "));
    };
    PriceBar::parse(record[0].trim(), open, high, low, close, volume).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {e}", e.field()))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Every line ending (`\r\n`, and a lone `\r` of old Mac files) as `\n`. The csv crate ends a
/// record at either but counts lines by `\n` only, and not always at the record's start, so
/// that every row of a `\r` file was "line 1" and rows after a `\r\n` were a line short.
fn line_endings_as_newlines(bytes: Vec<u8>) -> Vec<u8> {
    let mut text = Vec::with_capacity(bytes.len());
    let mut bytes = bytes.into_iter().peekable();
    while let Some(byte) = bytes.next() {
        if byte == b'\r' {
            bytes.next_if_eq(&b'\n');
            text.push(b'\n');
        } else {
            text.push(byte);
        }
    }
    text
}

/// Every bar of the file, or every rejected row by line number.
///
/// # Errors
/// [`ImportError`] for a wrong header or any bad row (all of them listed).
pub fn read_bars(mut input: impl Read) -> Result<Vec<PriceBar>, ImportError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::Csv(e.into()))?;
    let text = line_endings_as_newlines(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_slice());
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

    fn rejected(csv: &str) -> Vec<RejectedRow> {
        match read_bars(csv.as_bytes()) {
            Err(ImportError::Rows(rows)) => rows,
            other => panic!("expected rejected rows, got {other:?}"),
        }
    }

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
        let rows = rejected(csv);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(rows[0].reason.contains("date"));
        assert!(rows[2].reason.contains("volume"));
    }

    #[test]
    fn dates_follow_the_apis_strict_grammar() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n2025-1-2,10,12,9,11,11,1\n2025-01-03,10,12,9,11,11,1\n 2025-01-06 ,10,12,9,11,11,1\n";
        let rows = rejected(csv);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].line, 2);
        assert!(rows[0].reason.starts_with("date:"), "{}", rows[0].reason);
    }

    #[test]
    fn a_row_names_every_problem() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n2025-02-30,10,12,11,11,11,-1\n2025-01-02,x,12,9,11,11,1.5\n";
        let rows = rejected(csv);
        assert!(rows[0].reason.starts_with("date:"), "{}", rows[0].reason);
        assert!(rows[0].reason.contains("low:"), "{}", rows[0].reason);
        assert!(rows[0].reason.contains("volume:"), "{}", rows[0].reason);
        assert!(rows[1].reason.contains("open 'x'"), "{}", rows[1].reason);
        assert!(
            rows[1].reason.contains("volume '1.5'"),
            "{}",
            rows[1].reason
        );
    }

    #[test]
    fn rows_are_named_by_their_own_line_whatever_the_line_endings() {
        let csv = "Date,Open,High,Low,Close,Adj Close,Volume\r2025-11-19,10,12,9,11,11,1\r2025-13-01,10,12,9,11,11,1\r\n2025-11-20,10,12,9,13,13,1\r";
        let rows = rejected(csv);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4]);
        let crlf = "Date,Open,High,Low,Close,Adj Close,Volume\r\n2025-13-01,10,12,9,11,11,1\r\n2025-11-20,10,12,9,13,13,1\r\n";
        let lines: Vec<u64> = rejected(crlf).iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3]);
    }

    #[test]
    fn rejects_another_layout() {
        assert!(matches!(
            read_bars("date,close\n".as_bytes()),
            Err(ImportError::Header(_))
        ));
    }
}
