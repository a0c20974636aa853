//! Property-style check: on seeded random data sets, the database's list sorting, movers and
//! period returns agree with a straightforward in-memory computation.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use stockpile_application::ports::StockRepository;
use stockpile_domain::{
    ListQuery, MoverMetric, PageRequest, PriceBar, Quote, SortField, SortOrder, Ticker,
};

use super::fixtures::*;
use super::harness::on_each_backend;

/// Data sets per backend; each is small, so ties and missing values are frequent.
const SEEDS: u64 = 4;
const QUERIES_PER_SEED: usize = 60;

/// Words whose lower-cased forms collide, with spaces and punctuation that a locale-aware
/// collation would skip.
const NAMES: &[&str] = &[
    "alpha", "Alpha", "ALPHA co", "beta", "Beta-Co", "a b", "ab", "a%b", "z_z",
];
const SECTORS: &[&str] = &["Tech", "tech", "Energy"];
const EXCHANGES: &[&str] = &["NYSE", "nyse", "NASDAQ"];
const SEARCHES: &[&str] = &["a", "al", "b", "%", "_", " ", "co", "x"];

struct RefStock {
    ticker: Ticker,
    name: String,
    sector: String,
    exchange: String,
    market_cap: Option<i64>,
    bars: BTreeMap<NaiveDate, PriceBar>,
}

impl RefStock {
    fn quote(&self) -> Option<Quote> {
        let mut newest = self.bars.values().rev();
        let latest = newest.next()?;
        Some(Quote::derive(latest, newest.next()))
    }
}

fn first_day() -> NaiveDate {
    date(2025, 1, 1)
}

fn random_data(rng: &mut StdRng) -> Vec<RefStock> {
    let mut symbols = BTreeSet::new();
    let wanted = rng.gen_range(6..14);
    while symbols.len() < wanted {
        let len = rng.gen_range(1..=3);
        // A dot after the first letter sorts before every letter, byte-wise.
        let mut symbol = String::from(*b"ABC".choose(rng).unwrap() as char);
        symbol.extend((1..len).map(|_| *b"ABC.".choose(rng).unwrap() as char));
        symbols.insert(Ticker::parse(&symbol).unwrap());
    }
    symbols
        .into_iter()
        .map(|ticker| {
            let has_bars = rng.gen_bool(0.8);
            let mut bars = BTreeMap::new();
            for offset in 0..20_u64 {
                if has_bars && rng.gen_bool(0.5) {
                    let day = first_day() + Days::new(offset);
                    let close = rng.gen_range(1..=4) * 10_000;
                    bars.insert(day, flat_bar(day, close, rng.gen_range(0..4)));
                }
            }
            RefStock {
                ticker,
                name: NAMES.choose(rng).copied().unwrap_or_default().to_owned(),
                sector: SECTORS.choose(rng).copied().unwrap_or_default().to_owned(),
                exchange: EXCHANGES
                    .choose(rng)
                    .copied()
                    .unwrap_or_default()
                    .to_owned(),
                market_cap: rng.gen_bool(0.7).then(|| rng.gen_range(0..4)),
                bars,
            }
        })
        .collect()
}

/// Stores the data set, each stock's bars in two batches in random order, so the quote is
/// sometimes computed from bars that arrived before older ones.
async fn store(repo: &dyn StockRepository, stocks: &[RefStock], rng: &mut StdRng) {
    for stock in stocks {
        repo.upsert_stock(
            &stock.ticker,
            &profile(
                &stock.name,
                &stock.sector,
                &stock.exchange,
                stock.market_cap,
            ),
        )
        .await
        .unwrap();
        let mut bars: Vec<PriceBar> = stock.bars.values().copied().collect();
        bars.shuffle(rng);
        let split = rng.gen_range(0..=bars.len());
        repo.upsert_bars(&stock.ticker, &bars[..split])
            .await
            .unwrap();
        repo.upsert_bars(&stock.ticker, &bars[split..])
            .await
            .unwrap();
    }
}

/// `None` after every value, in either direction.
fn nulls_last<T: Ord>(a: Option<T>, b: Option<T>, order: SortOrder) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match order {
            SortOrder::Asc => a.cmp(&b),
            SortOrder::Desc => b.cmp(&a),
        },
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn reference_list(stocks: &[RefStock], query: &ListQuery) -> (Vec<String>, u64) {
    let matches = |stock: &&RefStock| {
        query.search.as_ref().is_none_or(|q| {
            stock.ticker.as_str().to_lowercase().contains(q.as_str())
                || stock.name.to_lowercase().contains(q.as_str())
        }) && query
            .sector
            .as_ref()
            .is_none_or(|s| stock.sector.to_lowercase() == *s)
            && query
                .exchange
                .as_ref()
                .is_none_or(|e| stock.exchange.to_lowercase() == *e)
    };
    let mut found: Vec<&RefStock> = stocks.iter().filter(matches).collect();
    found.sort_by(|a, b| {
        let (qa, qb) = (a.quote(), b.quote());
        let by_key = match query.sort {
            SortField::Ticker => nulls_last(Some(&a.ticker), Some(&b.ticker), query.order),
            SortField::Name => nulls_last(
                Some(a.name.to_lowercase()),
                Some(b.name.to_lowercase()),
                query.order,
            ),
            SortField::MarketCap => nulls_last(a.market_cap, b.market_cap, query.order),
            SortField::Price => nulls_last(qa.map(|q| q.price), qb.map(|q| q.price), query.order),
            SortField::ChangePercent => nulls_last(
                qa.and_then(|q| q.change_percent),
                qb.and_then(|q| q.change_percent),
                query.order,
            ),
            SortField::Volume => {
                nulls_last(qa.map(|q| q.volume), qb.map(|q| q.volume), query.order)
            }
        };
        by_key.then_with(|| a.ticker.cmp(&b.ticker))
    });
    let total = found.len() as u64;
    let page = found
        .into_iter()
        .skip(query.page.offset() as usize)
        .take(query.page.page_size as usize)
        .map(|s| s.ticker.to_string())
        .collect();
    (page, total)
}

fn random_query(rng: &mut StdRng) -> ListQuery {
    let pick = |rng: &mut StdRng, options: &[&str]| {
        rng.gen_bool(0.3).then(|| {
            options
                .choose(rng)
                .copied()
                .unwrap_or_default()
                .to_lowercase()
        })
    };
    ListQuery {
        search: pick(rng, SEARCHES),
        sector: pick(rng, SECTORS),
        exchange: pick(rng, EXCHANGES),
        sort: *SortField::ALL.choose(rng).unwrap_or(&SortField::Ticker),
        order: *SortOrder::ALL.choose(rng).unwrap_or(&SortOrder::Asc),
        page: PageRequest {
            page: rng.gen_range(1..=3),
            page_size: rng.gen_range(1..=6),
        },
    }
}

fn reference_movers(
    stocks: &[RefStock],
    metric: MoverMetric,
    as_of: NaiveDate,
    limit: u32,
) -> Vec<String> {
    let mut movers: Vec<(&RefStock, Quote)> = stocks
        .iter()
        .filter_map(|s| s.quote().map(|q| (s, q)))
        .filter(|(_, q)| q.as_of == as_of)
        .filter(|(_, q)| {
            let change = q.change_percent.map(|p| p.hundredths());
            match metric {
                MoverMetric::Gainers => change.is_some_and(|c| c > 0),
                MoverMetric::Losers => change.is_some_and(|c| c < 0),
                MoverMetric::Active => true,
            }
        })
        .collect();
    movers.sort_by(|(a, qa), (b, qb)| {
        let by_metric = match metric {
            MoverMetric::Gainers => qb.change_percent.cmp(&qa.change_percent),
            MoverMetric::Losers => qa.change_percent.cmp(&qb.change_percent),
            MoverMetric::Active => qb.volume.cmp(&qa.volume),
        };
        by_metric.then_with(|| a.ticker.cmp(&b.ticker))
    });
    movers
        .into_iter()
        .take(limit as usize)
        .map(|(s, _)| s.ticker.to_string())
        .collect()
}

fn reference_returns(
    stocks: &[RefStock],
    as_of: NaiveDate,
    start: NaiveDate,
    sector: Option<&str>,
) -> Vec<(String, i64, i64)> {
    stocks
        .iter()
        .filter(|s| sector.is_none_or(|sector| s.sector.to_lowercase() == sector))
        .filter_map(|s| {
            let end = s.bars.get(&as_of)?;
            let (_, start_bar) = s.bars.range(..=start).next_back()?;
            Some((
                s.ticker.to_string(),
                start_bar.close().units(),
                end.close().units(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn reads_agree_with_an_in_memory_reference() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        for seed in 0..SEEDS {
            let mut rng = StdRng::seed_from_u64(seed);
            let stocks = random_data(&mut rng);
            store(repo, &stocks, &mut rng).await;
            let context = format!("seed {seed}");

            for _ in 0..QUERIES_PER_SEED {
                let query = random_query(&mut rng);
                let page = repo.list(&query).await.unwrap();
                let got = tickers(page.items.iter().map(|s| &s.ticker));
                assert_eq!(
                    (got, page.total),
                    reference_list(&stocks, &query),
                    "{context}: {query:?}"
                );
                for item in &page.items {
                    let expected = stocks.iter().find(|s| s.ticker == item.ticker).unwrap();
                    assert_eq!(item.quote, expected.quote(), "{context}: {}", item.ticker);
                }
            }

            let as_of = stocks
                .iter()
                .filter_map(|s| s.bars.keys().next_back())
                .max()
                .copied();
            assert_eq!(repo.latest_trading_day().await.unwrap(), as_of, "{context}");
            if let Some(as_of) = as_of {
                for metric in MoverMetric::ALL {
                    let limit = rng.gen_range(1..=12);
                    let got = repo.movers(*metric, as_of, limit).await.unwrap();
                    assert_eq!(
                        tickers(got.iter().map(|s| &s.ticker)),
                        reference_movers(&stocks, *metric, as_of, limit),
                        "{context}: {metric:?} limit {limit}"
                    );
                }
                for _ in 0..6 {
                    let start = first_day() + Days::new(rng.gen_range(0..20));
                    let sector = rng.gen_bool(0.5).then_some("tech");
                    let got = sorted_returns(repo, as_of, start, sector).await;
                    assert_eq!(
                        got,
                        reference_returns(&stocks, as_of, start, sector),
                        "{context}: start {start} sector {sector:?}"
                    );
                }
            }

            for stock in &stocks {
                repo.delete_stock(&stock.ticker).await.unwrap();
            }
        }
    })
    .await;
}
