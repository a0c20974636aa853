//! sea-orm entities of the three tables. They stay inside this adapter: the rest of the
//! program sees only domain values and the port's records.

pub mod stock {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stocks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub ticker: String,
        pub name: String,
        pub exchange: String,
        pub sector: String,
        pub industry: Option<String>,
        pub currency: String,
        pub market_cap: Option<i64>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod price_bar {
    use sea_orm::entity::prelude::*;

    /// One daily bar; prices are counts of ten-thousandths.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "price_bars")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub stock_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub date: Date,
        pub open: i64,
        pub high: i64,
        pub low: i64,
        pub close: i64,
        pub volume: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod stock_quote {
    use sea_orm::entity::prelude::*;

    /// The quote of a stock's latest bar, kept in step with its bars by every price write so
    /// that lists, sorts and movers never have to find each stock's two latest bars.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock_quotes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub stock_id: i64,
        pub date: Date,
        pub price: i64,
        pub open: i64,
        pub high: i64,
        pub low: i64,
        pub volume: i64,
        pub previous_close: Option<i64>,
        pub change_units: Option<i64>,
        pub change_percent_hundredths: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The quote's values besides its key and date: what a read selects and a refresh replaces.
    pub const QUOTE_VALUES: [Column; 8] = [
        Column::Price,
        Column::Open,
        Column::High,
        Column::Low,
        Column::Volume,
        Column::PreviousClose,
        Column::ChangeUnits,
        Column::ChangePercentHundredths,
    ];
}
