//! Seeding: the real ticker universe with deterministic, synthetic daily bars.
//!
//! The universe (517 S&P 500 and NASDAQ-100 companies, `data/universe.csv`) is compiled into
//! the binary. Bars are a seeded random walk per ticker, weekdays only: the same options give
//! the same bars on every machine. Writes go through the same use cases as the HTTP API.

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stockpile_application::{AppError, StockService};
use stockpile_domain::{Price, PriceBar, StockProfile, Ticker};

const UNIVERSE_CSV: &str = include_str!("../../../data/universe.csv");

/// One company of the universe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UniverseRow {
    pub ticker: String,
    pub name: String,
    pub exchange: String,
    pub sector: String,
    pub industry: String,
    pub currency: String,
}

/// The companies of `data/universe.csv`, in file order.
///
/// # Errors
/// A CSV error, which would mean the compiled-in file is broken.
pub fn universe() -> Result<Vec<UniverseRow>, csv::Error> {
    csv::Reader::from_reader(UNIVERSE_CSV.as_bytes())
        .deserialize()
        .collect()
}

/// What to seed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SeedOptions {
    /// How many tickers: the universe's first N, then synthetic ones (SYN0001, …) beyond it.
    #[arg(long, default_value_t = 517)]
    pub tickers: usize,
    /// Trading days (weekdays) of bars per ticker.
    #[arg(long, default_value_t = 504)]
    pub days: usize,
    /// The last trading day; default: the last weekday up to today (UTC).
    #[arg(long)]
    pub last_date: Option<NaiveDate>,
    /// The random seed of the walk.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            tickers: 517,
            days: 504,
            last_date: None,
            seed: 42,
        }
    }
}

/// The last `count` weekdays up to and including `last` (or the weekday before it), oldest first.
pub fn trading_days(last: NaiveDate, count: usize) -> Vec<NaiveDate> {
    let mut days = Vec::with_capacity(count);
    let mut day = last;
    while days.len() < count {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            days.push(day);
        }
        match day.checked_sub_days(Days::new(1)) {
            Some(previous) => day = previous,
            None => break,
        }
    }
    days.reverse();
    days
}

/// A number close to a standard normal draw (Irwin–Hall: the sum of 12 uniforms minus 6),
/// enough for a plausible walk without another dependency.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    (0..12).map(|_| rng.gen::<f64>()).sum::<f64>() - 6.0
}

fn price(value: f64) -> Option<Price> {
    // Clamped to a cent so that a long down-walk never reaches zero.
    Price::from_units((value.max(0.01) * 10_000.0).round() as i64).ok()
}

/// The synthetic bars of one ticker: a geometric random walk with gaps, intraday ranges and
/// volumes that vary around a per-ticker base.
pub fn synthetic_bars(ticker: &str, days: &[NaiveDate], seed: u64) -> Vec<PriceBar> {
    let ticker_seed = ticker.bytes().fold(seed ^ 0x5157_4F43_4B50_494C, |h, b| {
        h.wrapping_mul(0x100_0000_01B3) ^ u64::from(b)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(ticker_seed);
    let mut close = (10.0_f64.ln() + rng.gen::<f64>() * (500.0_f64 / 10.0).ln()).exp();
    let drift = rng.gen_range(-0.0002..0.0008);
    let volatility = rng.gen_range(0.008..0.03);
    let base_volume = (rng.gen_range(13.0..18.0_f64)).exp();
    days.iter()
        .filter_map(|&date| {
            let open = close * (1.0 + standard_normal(&mut rng) * volatility * 0.3);
            close = open * (1.0 + drift + standard_normal(&mut rng) * volatility);
            let (open_p, close_p) = (price(open)?, price(close)?);
            let high = price(open.max(close) * (1.0 + rng.gen::<f64>() * volatility * 0.6))?
                .max(open_p.max(close_p));
            let low = price(open.min(close) * (1.0 - rng.gen::<f64>() * volatility * 0.6))?
                .min(open_p.min(close_p));
            let volume = (base_volume * (standard_normal(&mut rng) * 0.35).exp()).round() as i64;
            PriceBar::new(date, open_p, high, low, close_p, volume.max(0)).ok()
        })
        .collect()
}

/// The profile of the `index`-th seeded company: the universe's, then synthetic ones.
fn company(universe: &[UniverseRow], index: usize) -> UniverseRow {
    universe.get(index).cloned().unwrap_or_else(|| UniverseRow {
        ticker: format!("SYN{:04}", index - universe.len() + 1),
        name: format!("Synthetic Company {}", index - universe.len() + 1),
        exchange: if index.is_multiple_of(2) {
            "NYSE".into()
        } else {
            "NASDAQ".into()
        },
        sector: [
            "Energy",
            "Financials",
            "Health Care",
            "Industrials",
            "Information Technology",
        ][index % 5]
            .into(),
        industry: String::new(),
        currency: "USD".into(),
    })
}

/// The longest industry a stock profile accepts.
const MAX_INDUSTRY_CHARS: usize = 128;

/// The source lists a few companies' industries as long keyword lists (KEYS, TRMB); keep the
/// words that fit in a profile rather than refuse the company.
fn clip_industry(industry: &str) -> String {
    if industry.chars().count() <= MAX_INDUSTRY_CHARS {
        return industry.to_owned();
    }
    let mut clipped = String::new();
    for word in industry.split_whitespace() {
        if clipped.chars().count() + word.chars().count() + 1 > MAX_INDUSTRY_CHARS {
            break;
        }
        if !clipped.is_empty() {
            clipped.push(' ');
        }
        clipped.push_str(word);
    }
    clipped.trim_end_matches(',').to_owned()
}

/// The last weekday up to `day`.
pub fn last_weekday(day: NaiveDate) -> NaiveDate {
    trading_days(day, 1).first().copied().unwrap_or(day)
}

/// Seeds the stocks and their bars through the service; returns (stocks, bars) written.
///
/// # Errors
/// The first write that fails.
pub async fn seed(
    service: &dyn StockService,
    options: &SeedOptions,
    show_progress: bool,
) -> Result<(usize, u64), AppError> {
    let universe = universe().map_err(|e| AppError::Internal(Box::new(e)))?;
    let last = options
        .last_date
        .unwrap_or_else(|| last_weekday(Utc::now().date_naive()));
    let days = trading_days(last, options.days);
    let progress = if show_progress {
        ProgressBar::new(options.tickers as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("seeding {bar:40} {pos}/{len} tickers ({eta})")
    {
        progress.set_style(style);
    }
    let mut bars_written = 0;
    for index in 0..options.tickers {
        let row = company(&universe, index);
        let ticker = Ticker::parse(&row.ticker)
            .map_err(|e| AppError::invalid("ticker", format!("{}: {e}", row.ticker)))?;
        let bars = synthetic_bars(ticker.as_str(), &days, options.seed);
        let shares = 200_000_000 + (bars.first().map_or(0, |b| b.volume()) % 100) * 150_000_000;
        let market_cap = bars
            .last()
            .map(|b| (b.close().to_f64() * shares as f64) as i64);
        let industry = Some(clip_industry(&row.industry)).filter(|i| !i.is_empty());
        let profile = StockProfile::new(
            row.name,
            row.exchange,
            row.sector,
            industry,
            Some(&row.currency),
            market_cap,
        )
        .map_err(|errors| AppError::invalid("profile", format!("{}: {errors:?}", row.ticker)))?;
        service.upsert_stock(ticker.clone(), profile).await?;
        if !bars.is_empty() {
            bars_written += service.upload_prices(ticker, bars).await?;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok((options.tickers, bars_written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_universe_is_the_517_companies() {
        let rows = universe().unwrap();
        assert_eq!(rows.len(), 517);
        let apple = rows.iter().find(|r| r.ticker == "AAPL").unwrap();
        assert_eq!(apple.name, "Apple Inc.");
        assert!(rows.iter().all(|r| Ticker::parse(&r.ticker).is_ok()));
    }

    #[test]
    fn every_company_of_the_universe_makes_a_valid_profile() {
        for row in universe().unwrap() {
            let industry = clip_industry(&row.industry);
            assert!(industry.chars().count() <= MAX_INDUSTRY_CHARS);
            let profile = StockProfile::new(
                row.name,
                row.exchange,
                row.sector,
                Some(industry),
                Some(&row.currency),
                Some(1),
            );
            assert!(profile.is_ok(), "{}: {profile:?}", row.ticker);
        }
        assert_eq!(clip_industry("Semiconductors"), "Semiconductors");
    }

    #[test]
    fn trading_days_are_weekdays_ending_at_the_last_date() {
        let days = trading_days(d(2025, 11, 23), 6); // a Sunday
        assert_eq!(days.len(), 6);
        assert_eq!(*days.last().unwrap(), d(2025, 11, 21));
        assert_eq!(days[0], d(2025, 11, 14));
        assert!(days
            .iter()
            .all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)));
    }

    #[test]
    fn bars_are_deterministic_valid_and_vary_by_ticker() {
        let days = trading_days(d(2025, 11, 21), 504);
        let a = synthetic_bars("AAPL", &days, 42);
        assert_eq!(a.len(), 504);
        assert_eq!(a, synthetic_bars("AAPL", &days, 42));
        assert_ne!(a, synthetic_bars("MSFT", &days, 42));
        assert_ne!(a, synthetic_bars("AAPL", &days, 43));
        assert!(a.iter().all(|b| b.volume() > 0));
    }
}
