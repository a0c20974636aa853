//! `stockpile import` (`crates/stockpile/src/import.rs`): any file is all its bars or every bad
//! row named by a line number, never a panic; every bar holds together, and bars written back
//! in the same layout import to themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oracles::assert_holds_together;
use stockpile::import::{read_bars, ImportError};

fuzz_target!(|bytes: &[u8]| {
    match read_bars(bytes) {
        Ok(bars) => {
            bars.iter().for_each(assert_holds_together);
            let mut file = String::from("Date,Open,High,Low,Close,Adj Close,Volume\n");
            for bar in &bars {
                file.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    bar.date().format("%Y-%m-%d"),
                    bar.open(),
                    bar.high(),
                    bar.low(),
                    bar.close(),
                    bar.close(),
                    bar.volume()
                ));
            }
            match read_bars(file.as_bytes()) {
                Ok(again) => assert_eq!(again, bars, "{file}"),
                Err(error) => panic!("{file} did not import again: {error}"),
            }
        }
        Err(ImportError::Rows(rows)) => {
            assert!(!rows.is_empty());
            // Rows are named in file order, each by its own line, whatever the line endings
            // (`\n`, `\r\n` or a lone `\r`), and never by the header's.
            assert!(rows.windows(2).all(|w| w[0].line < w[1].line), "{rows:?}");
            assert!(rows[0].line > 1, "{rows:?}");
        }
        Err(ImportError::Header(_) | ImportError::Csv(_)) => {}
    }
});
