/// A three-letter, upper-case currency code such as `USD`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// The grammar [`Currency::parse`] accepts, as a regular expression for documents.
    pub const PATTERN: &'static str = "^[A-Z]{3}$";

    /// # Errors
    /// [`StockProfileError::Currency`] unless the code is exactly three upper-case letters.
    pub fn parse(raw: &str) -> Result<Self, StockProfileError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(StockProfileError::Currency)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

/// How many characters a text field holds, at least and at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimit {
    pub min: usize,
    pub max: usize,
}

/// The descriptive facts of a listed company, as an administrator writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockProfile {
    name: String,
    exchange: String,
    sector: String,
    industry: Option<String>,
    currency: Currency,
    market_cap: Option<i64>,
}

/// Which field of a stock profile is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockProfileError {
    #[error("name must be {} to {} characters, none of them NUL", StockProfile::NAME.min, StockProfile::NAME.max)]
    Name,
    #[error("exchange must be {} to {} characters, none of them NUL", StockProfile::EXCHANGE.min, StockProfile::EXCHANGE.max)]
    Exchange,
    #[error("sector must be {} to {} characters, none of them NUL", StockProfile::SECTOR.min, StockProfile::SECTOR.max)]
    Sector,
    #[error("industry must be at most {} characters, none of them NUL", StockProfile::INDUSTRY.max)]
    Industry,
    #[error("currency must be three upper-case letters, such as USD")]
    Currency,
    #[error("market_cap must be an integer of at least 0")]
    MarketCap,
}

impl StockProfileError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Exchange => "exchange",
            Self::Sector => "sector",
            Self::Industry => "industry",
            Self::Currency => "currency",
            Self::MarketCap => "market_cap",
        }
    }
}

impl TextLimit {
    /// `min..=max` characters, not blank when required, and no NUL (U+0000): PostgreSQL text
    /// cannot hold one, so it is refused here, a 400 on every backend rather than a 500 on one.
    pub fn admits(self, text: &str) -> bool {
        let chars = text.chars().count();
        (self.min..=self.max).contains(&chars)
            && !(self.min > 0 && text.trim().is_empty())
            && !text.contains('\0')
    }
}

impl StockProfile {
    pub const NAME: TextLimit = TextLimit { min: 1, max: 200 };
    pub const EXCHANGE: TextLimit = TextLimit { min: 1, max: 32 };
    pub const SECTOR: TextLimit = TextLimit { min: 1, max: 64 };
    pub const INDUSTRY: TextLimit = TextLimit { min: 0, max: 128 };

    /// Checks every field; the first problem of each field is reported.
    ///
    /// # Errors
    /// Every [`StockProfileError`] that applies, in field order.
    pub fn new(
        name: String,
        exchange: String,
        sector: String,
        industry: Option<String>,
        currency: Option<&str>,
        market_cap: Option<i64>,
    ) -> Result<Self, Vec<StockProfileError>> {
        let mut errors = Vec::new();
        if !Self::NAME.admits(&name) {
            errors.push(StockProfileError::Name);
        }
        if !Self::EXCHANGE.admits(&exchange) {
            errors.push(StockProfileError::Exchange);
        }
        if !Self::SECTOR.admits(&sector) {
            errors.push(StockProfileError::Sector);
        }
        if industry
            .as_deref()
            .is_some_and(|i| !Self::INDUSTRY.admits(i))
        {
            errors.push(StockProfileError::Industry);
        }
        let currency = match currency.map(Currency::parse).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                errors.push(e);
                Currency::default()
            }
        };
        if market_cap.is_some_and(|m| m < 0) {
            errors.push(StockProfileError::MarketCap);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            name,
            exchange,
            sector,
            industry,
            currency,
            market_cap,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn exchange(&self) -> &str {
        &self.exchange
    }
    pub fn sector(&self) -> &str {
        &self.sector
    }
    pub fn industry(&self) -> Option<&str> {
        self.industry.as_deref()
    }
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
    pub fn market_cap(&self) -> Option<i64> {
        self.market_cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(
        name: &str,
        currency: Option<&str>,
        cap: Option<i64>,
    ) -> Result<StockProfile, Vec<StockProfileError>> {
        StockProfile::new(
            name.into(),
            "NASDAQ".into(),
            "Tech".into(),
            None,
            currency,
            cap,
        )
    }

    #[test]
    fn defaults_the_currency_to_usd() {
        assert_eq!(
            profile("Apple", None, None).unwrap().currency().as_str(),
            "USD"
        );
    }

    #[test]
    fn reports_every_invalid_field() {
        let errors = profile("", Some("usd"), Some(-1)).unwrap_err();
        assert_eq!(
            errors,
            vec![
                StockProfileError::Name,
                StockProfileError::Currency,
                StockProfileError::MarketCap
            ]
        );
        assert!(profile(&"x".repeat(201), None, None).is_err());
        assert!(profile(&"é".repeat(200), None, None).is_ok());
        assert!(profile("   ", None, None).is_err());
        assert_eq!(
            profile("Apple\0", None, None).unwrap_err(),
            vec![StockProfileError::Name]
        );
    }
}
