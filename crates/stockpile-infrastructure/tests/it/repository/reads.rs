//! The reads: list, detail, bars, movers, leaderboard inputs.

use stockpile_application::ports::{RepositoryError, StockRepository};
use stockpile_domain::{ListQuery, MoverMetric, PageRequest, SortField, SortOrder};

use super::fixtures::*;
use super::harness::on_each_backend;

/// Five stocks whose sort keys tie, differ and are missing in every combination:
///
/// | ticker | cap | price | change % | volume |
/// |--------|-----|-------|----------|--------|
/// | AAA    | 300 | 11    | +10      | 100    |
/// | BBB    | –   | –     | –        | –      |
/// | CCC    | 100 | 9     | −10      | 300    |
/// | DDD    | 300 | 20    | –        | 100    |
/// | EEE    | 200 | 11    | +10      | 200    |
async fn seed_sort_keys(repo: &dyn StockRepository) {
    let (before, last) = (date(2025, 11, 20), date(2025, 11, 21));
    add_stock(repo, "AAA", "banana", Some(300)).await;
    add_stock(repo, "BBB", "Apple", None).await;
    add_stock(repo, "CCC", "cherry", Some(100)).await;
    add_stock(repo, "DDD", "apple", Some(300)).await;
    add_stock(repo, "EEE", "Zebra", Some(200)).await;
    add_closes(repo, "AAA", &[(before, 100_000, 1), (last, 110_000, 100)]).await;
    add_closes(repo, "CCC", &[(before, 100_000, 1), (last, 90_000, 300)]).await;
    add_closes(repo, "DDD", &[(last, 200_000, 100)]).await;
    add_closes(repo, "EEE", &[(before, 100_000, 1), (last, 110_000, 200)]).await;
}

#[tokio::test]
async fn list_sorts_with_nulls_last_and_ties_by_ticker() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        seed_sort_keys(repo).await;
        use SortField::*;
        use SortOrder::*;
        let cases = [
            (Ticker, Asc, "AAA BBB CCC DDD EEE"),
            (Ticker, Desc, "EEE DDD CCC BBB AAA"),
            // Names compare lower-cased: "Apple" and "apple" tie, and the ticker decides.
            (Name, Asc, "BBB DDD AAA CCC EEE"),
            (Name, Desc, "EEE CCC AAA BBB DDD"),
            (MarketCap, Asc, "CCC EEE AAA DDD BBB"),
            (MarketCap, Desc, "AAA DDD EEE CCC BBB"),
            (Price, Asc, "CCC AAA EEE DDD BBB"),
            (Price, Desc, "DDD AAA EEE CCC BBB"),
            (ChangePercent, Asc, "CCC AAA EEE BBB DDD"),
            (ChangePercent, Desc, "AAA EEE CCC BBB DDD"),
            (Volume, Asc, "AAA DDD EEE CCC BBB"),
            (Volume, Desc, "CCC EEE AAA DDD BBB"),
        ];
        for (sort, order, expected) in cases {
            let page = repo.list(&list_query(sort, order)).await.unwrap();
            assert_eq!(
                tickers(page.items.iter().map(|s| &s.ticker)).join(" "),
                expected,
                "sort={} order={}",
                sort.as_str(),
                order.as_str()
            );
            assert_eq!(page.total, 5);
        }
    })
    .await;
}

#[tokio::test]
async fn list_rows_carry_the_quote() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        seed_sort_keys(repo).await;
        let page = repo
            .list(&list_query(SortField::Ticker, SortOrder::Asc))
            .await
            .unwrap();
        let aaa = &page.items[0];
        assert_eq!(aaa.name, "banana");
        assert_eq!(aaa.market_cap, Some(300));
        assert_eq!(aaa.currency, "USD");
        let quote = aaa.quote.unwrap();
        assert_eq!(quote.as_of, date(2025, 11, 21));
        assert_eq!(quote.price, price(110_000));
        assert_eq!(quote.previous_close, Some(price(100_000)));
        assert_eq!(quote.change_units, Some(10_000));
        assert_eq!(quote.change_percent.unwrap().hundredths(), 1_000);
        assert_eq!(quote.volume, 100);
        assert_eq!(page.items[1].quote, None);
        let ddd = page.items[3].quote.unwrap();
        assert_eq!((ddd.previous_close, ddd.change_percent), (None, None));
    })
    .await;
}

#[tokio::test]
async fn list_filters_are_case_insensitive_and_search_is_literal() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock_in(repo, "JUICE", "100% Juice Co", "Tech", "NYSE", None).await;
        add_stock_in(
            repo,
            "UND",
            "Under_Score Inc",
            "Information Technology",
            "nyse",
            None,
        )
        .await;
        add_stock_in(repo, "PLN", "Plain Corp", "TECH", "NASDAQ", None).await;
        add_stock_in(repo, "BRK.B", "Berkshire", "Financials", "NYSE", None).await;
        let check = |search: Option<&str>, sector: Option<&str>, exchange: Option<&str>| {
            let query = ListQuery {
                search: search.map(str::to_owned),
                sector: sector.map(str::to_owned),
                exchange: exchange.map(str::to_owned),
                ..list_query(SortField::Ticker, SortOrder::Asc)
            };
            async move {
                let page = repo.list(&query).await.unwrap();
                assert_eq!(page.total as usize, page.items.len());
                tickers(page.items.iter().map(|s| &s.ticker)).join(" ")
            }
        };
        // `%` and `_` are ordinary characters in a search, not LIKE wildcards.
        assert_eq!(check(Some("%"), None, None).await, "JUICE");
        assert_eq!(check(Some("_"), None, None).await, "UND");
        assert_eq!(check(Some("r_s"), None, None).await, "UND");
        assert_eq!(check(Some("rxs"), None, None).await, "");
        assert_eq!(check(Some("\\"), None, None).await, "");
        // Name or ticker, case-insensitively.
        assert_eq!(check(Some("juice"), None, None).await, "JUICE");
        assert_eq!(check(Some("pln"), None, None).await, "PLN");
        assert_eq!(check(Some("k.b"), None, None).await, "BRK.B");
        assert_eq!(check(Some("in"), None, None).await, "PLN UND");
        // Sector and exchange are exact matches, whatever the case.
        assert_eq!(check(None, Some("tech"), None).await, "JUICE PLN");
        assert_eq!(
            check(None, Some("information technology"), None).await,
            "UND"
        );
        assert_eq!(check(None, Some("technology"), None).await, "");
        assert_eq!(check(None, None, Some("nyse")).await, "BRK.B JUICE UND");
        assert_eq!(check(Some("co"), Some("tech"), Some("nyse")).await, "JUICE");
    })
    .await;
}

#[tokio::test]
async fn list_pages_and_counts_the_matches() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        for symbol in ["A", "B", "C", "D", "E", "F", "G"] {
            add_stock(repo, symbol, &format!("Company {symbol}"), None).await;
        }
        add_stock_in(repo, "X", "Other", "Energy", "NYSE", None).await;
        let page = |page: u32, sector: Option<&str>| {
            let query = ListQuery {
                sector: sector.map(str::to_owned),
                page: PageRequest { page, page_size: 3 },
                ..ListQuery::default()
            };
            async move {
                let page = repo.list(&query).await.unwrap();
                (
                    tickers(page.items.iter().map(|s| &s.ticker)).join(" "),
                    page.total,
                )
            }
        };
        assert_eq!(page(1, None).await, ("A B C".into(), 8));
        assert_eq!(page(2, None).await, ("D E F".into(), 8));
        assert_eq!(page(3, None).await, ("G X".into(), 8));
        assert_eq!(page(4, None).await, ("".into(), 8));
        assert_eq!(page(3, Some("tech")).await, ("G".into(), 7));
    })
    .await;
}

#[tokio::test]
async fn detail_has_the_52_week_range_and_recent_volume() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", Some(3_000)).await;
        add_stock(repo, "NEW", "Newcomer", None).await;
        let latest = date(2025, 11, 21);
        let mut bars = vec![
            // Exactly 365 days before the latest bar: outside the window.
            ohlc(date(2024, 11, 21), 100_000, 9_990_000, 100_000, 100_000, 5),
            // 364 days before: inside, and the lowest low.
            ohlc(date(2024, 11, 22), 100_000, 100_000, 10_000, 100_000, 5),
        ];
        // Forty daily bars up to the latest, volumes 1..=40, the latest close 150.
        for i in 0..40_u64 {
            let day = latest - chrono::Days::new(39 - i);
            let close = 120_000 + 1_000 * i as i64;
            bars.push(ohlc(
                day,
                close,
                close + 500,
                close - 500,
                close,
                i as i64 + 1,
            ));
        }
        repo.upsert_bars(&ticker("AAPL"), &bars).await.unwrap();

        let detail = repo.detail(&ticker("aapl")).await.unwrap().unwrap();
        assert_eq!(detail.fifty_two_week_high, Some(price(159_500)));
        assert_eq!(detail.fifty_two_week_low, Some(price(10_000)));
        // The last 30 bars have volumes 11..=40.
        assert_eq!(detail.recent_volume, ((11..=40).sum(), 30));
        let quote = detail.stock.quote.unwrap();
        assert_eq!(quote.as_of, latest);
        assert_eq!(quote.price, price(159_000));
        assert_eq!(quote.previous_close, Some(price(158_000)));
        assert_eq!((quote.high, quote.low), (price(159_500), price(158_500)));
        assert_eq!(detail.stock.market_cap, Some(3_000));

        let fresh = repo.detail(&ticker("NEW")).await.unwrap().unwrap();
        assert_eq!(fresh.stock.quote, None);
        assert_eq!(fresh.fifty_two_week_high, None);
        assert_eq!(fresh.fifty_two_week_low, None);
        assert_eq!(fresh.recent_volume, (0, 0));

        assert_eq!(repo.detail(&ticker("NOPE")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn bars_are_an_inclusive_range_oldest_first() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        add_stock(repo, "AAPL", "Apple", None).await;
        add_stock(repo, "MSFT", "Microsoft", None).await;
        let days: Vec<_> = (1..=10).map(|d| date(2025, 3, d)).collect();
        // Uploaded newest first, to see that order comes from the query.
        let bars: Vec<_> = days.iter().rev().map(|&d| (d, 10_000, 1)).collect();
        add_closes(repo, "AAPL", &bars).await;
        add_closes(repo, "MSFT", &[(days[4], 20_000, 2)]).await;

        let got = repo.bars(&ticker("AAPL"), days[2], days[5]).await.unwrap();
        let got_days: Vec<_> = got.iter().map(|b| b.date()).collect();
        assert_eq!(got_days, days[2..=5].to_vec());
        assert!(repo
            .bars(&ticker("AAPL"), date(2026, 1, 1), date(2026, 2, 1))
            .await
            .unwrap()
            .is_empty());
        add_stock(repo, "NEW", "Newcomer", None).await;
        assert!(repo
            .bars(&ticker("NEW"), days[0], days[9])
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            repo.bars(&ticker("NOPE"), days[0], days[9]).await,
            Err(RepositoryError::NotFound(t)) if t.as_str() == "NOPE"
        ));

        assert_eq!(
            repo.latest_bar_date(&ticker("AAPL")).await.unwrap(),
            Some(days[9])
        );
        assert_eq!(repo.latest_bar_date(&ticker("NEW")).await.unwrap(), None);
        assert!(matches!(
            repo.latest_bar_date(&ticker("NOPE")).await,
            Err(RepositoryError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn latest_trading_day_is_the_newest_bar_of_any_stock() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        assert_eq!(repo.latest_trading_day().await.unwrap(), None);
        add_stock(repo, "AAPL", "Apple", None).await;
        assert_eq!(repo.latest_trading_day().await.unwrap(), None);
        add_stock(repo, "MSFT", "Microsoft", None).await;
        add_closes(repo, "AAPL", &[(date(2025, 11, 20), 10_000, 1)]).await;
        add_closes(repo, "MSFT", &[(date(2025, 11, 18), 10_000, 1)]).await;
        assert_eq!(
            repo.latest_trading_day().await.unwrap(),
            Some(date(2025, 11, 20))
        );
    })
    .await;
}

#[tokio::test]
async fn movers_rank_the_latest_day_and_cut_at_zero() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        let (before, as_of) = (date(2025, 11, 20), date(2025, 11, 21));
        let stocks: [(&str, i64, i64, i64); 7] = [
            ("UP1", 1_000_000, 1_100_000, 50),
            ("UP2", 1_000_000, 1_050_000, 500),
            ("UP3", 1_000_000, 1_100_000, 50),
            ("FLAT", 1_000_000, 1_000_000, 1_000),
            // +0.004 % rounds to 0.00 %: neither a gainer nor a loser.
            ("TINY", 1_000_000, 1_000_040, 7),
            ("DOWN", 1_000_000, 900_000, 10),
            // −0.004 % rounds to −0.00 %, which is no loss either.
            ("DIP", 1_000_000, 999_960, 8),
        ];
        for (symbol, previous, close, volume) in stocks {
            add_stock(repo, symbol, symbol, None).await;
            add_closes(
                repo,
                symbol,
                &[(before, previous, 1), (as_of, close, volume)],
            )
            .await;
        }
        add_stock(repo, "SOLO", "Only one bar", None).await;
        add_closes(repo, "SOLO", &[(as_of, 10_000, 60)]).await;
        // Its latest bar is a day old: it takes no part.
        add_stock(repo, "OLD", "Stale", None).await;
        add_closes(
            repo,
            "OLD",
            &[(date(2025, 11, 19), 10_000, 1), (before, 15_000, 5_000)],
        )
        .await;

        let movers = |metric, limit| async move {
            let items = repo.movers(metric, as_of, limit).await.unwrap();
            assert!(items.iter().all(|s| s.quote.unwrap().as_of == as_of));
            tickers(items.iter().map(|s| &s.ticker)).join(" ")
        };
        assert_eq!(movers(MoverMetric::Gainers, 10).await, "UP1 UP3 UP2");
        assert_eq!(movers(MoverMetric::Gainers, 2).await, "UP1 UP3");
        assert_eq!(movers(MoverMetric::Losers, 10).await, "DOWN");
        assert_eq!(
            movers(MoverMetric::Active, 10).await,
            "FLAT UP2 SOLO UP1 UP3 DOWN DIP TINY"
        );
        assert_eq!(movers(MoverMetric::Active, 1).await, "FLAT");
        assert!(repo
            .movers(MoverMetric::Active, date(2025, 1, 1), 10)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn period_returns_start_at_the_last_close_on_or_before_the_start() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        let (start, as_of) = (date(2025, 10, 21), date(2025, 11, 21));
        add_stock(repo, "A", "Gap before start", None).await;
        add_closes(
            repo,
            "A",
            &[
                (date(2025, 10, 15), 100_000, 1),
                (date(2025, 10, 20), 110_000, 1),
                (date(2025, 10, 22), 999_000, 1),
                (as_of, 121_000, 1),
            ],
        )
        .await;
        add_stock(repo, "B", "Bar on the start", None).await;
        add_closes(
            repo,
            "B",
            &[
                (start, 50_000, 1),
                (date(2025, 10, 22), 60_000, 1),
                (as_of, 75_000, 1),
            ],
        )
        .await;
        add_stock(repo, "C", "Too young", None).await;
        add_closes(
            repo,
            "C",
            &[(date(2025, 10, 22), 10_000, 1), (as_of, 20_000, 1)],
        )
        .await;
        add_stock(repo, "D", "No bar on as_of", None).await;
        add_closes(
            repo,
            "D",
            &[
                (date(2025, 10, 1), 10_000, 1),
                (date(2025, 11, 20), 20_000, 1),
            ],
        )
        .await;
        add_stock_in(repo, "E", "Energy Co", "Energy", "NYSE", None).await;
        add_closes(
            repo,
            "E",
            &[(date(2025, 10, 1), 10_000, 1), (as_of, 20_000, 1)],
        )
        .await;
        add_stock(repo, "F", "No bars", None).await;

        let returns = |sector: Option<&'static str>| sorted_returns(repo, as_of, start, sector);
        let a = ("A".to_owned(), 110_000, 121_000);
        let b = ("B".to_owned(), 50_000, 75_000);
        let e = ("E".to_owned(), 10_000, 20_000);
        assert_eq!(returns(None).await, vec![a.clone(), b.clone(), e.clone()]);
        assert_eq!(returns(Some("tech")).await, vec![a, b]);
        assert_eq!(returns(Some("energy")).await, vec![e]);
        assert_eq!(returns(Some("ener")).await, vec![]);

        let records = repo.period_returns(as_of, start, None).await.unwrap();
        let first = records.iter().find(|r| r.ticker.as_str() == "E").unwrap();
        assert_eq!(
            (first.name.as_str(), first.sector.as_str()),
            ("Energy Co", "Energy")
        );
    })
    .await;
}

#[tokio::test]
async fn summaries_answer_the_named_stocks_with_their_quotes_in_one_query() {
    on_each_backend(|db| async move {
        let repo: &dyn StockRepository = &db.repo;
        seed_sort_keys(repo).await;
        let asked = ["EEE", "ZZZ", "BBB", "AAA"].map(ticker);
        let mut found = repo.summaries(&asked).await.unwrap();
        found.sort_by(|a, b| a.ticker.cmp(&b.ticker));
        assert_eq!(
            tickers(found.iter().map(|s| &s.ticker)),
            ["AAA", "BBB", "EEE"]
        );
        let aaa = &found[0];
        assert_eq!((aaa.name.as_str(), aaa.market_cap), ("banana", Some(300)));
        let quote = aaa.quote.as_ref().unwrap();
        assert_eq!((quote.price, quote.volume), (price(110_000), 100));
        assert_eq!(quote.as_of, date(2025, 11, 21));
        assert!(found[1].quote.is_none(), "BBB has no bars");
        assert!(repo.summaries(&[]).await.unwrap().is_empty());
        assert!(repo.summaries(&[ticker("NONE")]).await.unwrap().is_empty());
    })
    .await;
}
