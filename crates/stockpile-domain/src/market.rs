use std::str::FromStr;

/// The most items one page of the stock list may hold.
pub const MAX_PAGE_SIZE: u32 = 200;
/// The most items a movers list or leaderboard may hold.
pub const MAX_LIMIT: u32 = 100;
/// The longest search text accepted, in characters.
pub const MAX_QUERY_LEN: usize = 64;
/// The highest page number accepted: the page is counted in 32 bits, far past any last page.
pub const MAX_PAGE: u32 = u32::MAX;

/// A value that is not one of an enumeration's listed, lower-case spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not one of {}", allowed.join(", "))]
pub struct ParseEnumError {
    pub given: String,
    pub allowed: &'static [&'static str],
}

impl ParseEnumError {
    pub(crate) fn new(given: &str, allowed: &'static [&'static str]) -> Self {
        let given: String = given.chars().take(32).collect();
        Self { given, allowed }
    }
}

macro_rules! lower_case_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = $text] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseEnumError::new(s, Self::NAMES)),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }
    };
}

lower_case_enum! {
    /// The column a stock list is ordered by.
    SortField {
        Ticker => "ticker",
        Name => "name",
        MarketCap => "market_cap",
        Price => "price",
        ChangePercent => "change_percent",
        Volume => "volume",
    } default Ticker
}

lower_case_enum! {
    /// Ascending or descending order.
    SortOrder { Asc => "asc", Desc => "desc" } default Asc
}

lower_case_enum! {
    /// Which movers of the latest trading day to rank.
    MoverMetric { Gainers => "gainers", Losers => "losers", Active => "active" } default Gainers
}

/// One page of a list: 1-based page number and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: 50,
        }
    }
}

impl PageRequest {
    /// How many rows precede this page.
    pub fn offset(self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.page_size)
    }
}

/// A filtered, ordered, paged request for the stock list, normalised so that equivalent
/// requests are equal: the search text and filters are lower case, blanks mean "no filter".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ListQuery {
    pub search: Option<String>,
    pub sector: Option<String>,
    pub exchange: Option<String>,
    pub sort: SortField,
    pub order: SortOrder,
    pub page: PageRequest,
}

impl ListQuery {
    /// Normalises a free-text filter: trimmed, lower case, `None` when blank.
    pub fn normalise_filter(raw: Option<&str>) -> Option<String> {
        raw.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerations_accept_only_their_lower_case_names() {
        assert_eq!(
            "market_cap".parse::<SortField>().unwrap(),
            SortField::MarketCap
        );
        assert_eq!("desc".parse::<SortOrder>().unwrap(), SortOrder::Desc);
        assert_eq!(
            "active".parse::<MoverMetric>().unwrap(),
            MoverMetric::Active
        );
        assert!("Ticker".parse::<SortField>().is_err());
        assert!("DESC".parse::<SortOrder>().is_err());
        assert!("".parse::<MoverMetric>().is_err());
        let err = "up".parse::<MoverMetric>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'up' is not one of gainers, losers, active"
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        assert_eq!(SortField::default(), SortField::Ticker);
        assert_eq!(SortOrder::default(), SortOrder::Asc);
        assert_eq!(MoverMetric::default(), MoverMetric::Gainers);
        assert_eq!(
            PageRequest::default(),
            PageRequest {
                page: 1,
                page_size: 50
            }
        );
        assert_eq!(
            PageRequest {
                page: 3,
                page_size: 20
            }
            .offset(),
            40
        );
    }

    #[test]
    fn filters_normalise_case_and_blanks() {
        assert_eq!(
            ListQuery::normalise_filter(Some("  Tech ")),
            Some("tech".into())
        );
        assert_eq!(ListQuery::normalise_filter(Some("   ")), None);
        assert_eq!(ListQuery::normalise_filter(None), None);
    }
}
