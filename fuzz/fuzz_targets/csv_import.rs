//! `stockpile import` (`crates/stockpile/src/import.rs`): any file is all its bars or every bad
//! row named by a line number, never a panic; every bar holds together, and bars written back
//! in the same layout import to themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stockpile::import::{read_bars, ImportError};
use stockpile_domain::PriceBar;

fn assert_holds_together(bar: &PriceBar) {
    oracles::assert_holds_together(bar);
    assert!(bar.volume() >= 0, "{bar:?}");
}

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
            // Rows are named in file order. Not more: the csv crate ends a record at a lone
            // `\r` but counts lines by `\n` only, so in a file with `\r` line endings rows share
            // a line number, the header's included.
            assert!(rows.windows(2).all(|w| w[0].line <= w[1].line), "{rows:?}");
        }
        Err(ImportError::Header(_) | ImportError::Csv(_)) => {}
    }
});
