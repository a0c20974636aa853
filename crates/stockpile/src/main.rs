//! `stockpile`: serve (the default), migrate, seed or import.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stockpile::app::wire;
use stockpile::import::read_bars;
use stockpile::seed::SeedOptions;
use stockpile::{telemetry, Application, Settings};
use stockpile_application::ports::StockRepository;
use stockpile_domain::Ticker;

#[derive(Debug, Parser)]
#[command(
    name = "stockpile",
    version,
    about = "Stock-market data over HTTP, cached"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create or update the database schema.
    Migrate,
    /// Load the ticker universe with synthetic daily bars.
    Seed {
        #[command(flatten)]
        options: SeedOptions,
        /// Do nothing when the database already holds stocks.
        #[arg(long)]
        if_empty: bool,
    },
    /// Print the OpenAPI document the server serves.
    Openapi,
    /// Import daily bars for one ticker from a CSV (Date,Open,High,Low,Close,Adj Close,Volume).
    Import {
        /// The ticker the bars belong to (the stock must exist).
        #[arg(long)]
        ticker: String,
        /// The CSV file.
        file: PathBuf,
    },
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("stockpile: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    match run(cli.command.unwrap_or(Command::Serve), &settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("stockpile: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: &Settings) -> Result<(), String> {
    match command {
        Command::Serve => {
            let app = Application::build(settings)
                .await
                .map_err(|e| e.to_string())?;
            app.run_until_stopped()
                .await
                .map_err(|e| format!("the server stopped with an error: {e}"))?;
            tracing::info!("stopped gracefully");
        }
        Command::Openapi => {
            let document = stockpile_api::openapi()
                .to_pretty_json()
                .map_err(|e| e.to_string())?;
            println!("{document}");
        }
        Command::Migrate => {
            wire(settings).await.map_err(|e| e.to_string())?;
            tracing::info!("the database schema is up to date");
        }
        Command::Seed { options, if_empty } => {
            let services = wire(settings).await.map_err(|e| e.to_string())?;
            let existing = services
                .repository
                .count_stocks()
                .await
                .map_err(|e| e.to_string())?;
            if if_empty && existing > 0 {
                tracing::info!(
                    stocks = existing,
                    "the database already holds stocks; not seeding"
                );
                return Ok(());
            }
            let (stocks, bars) = services
                .seed(&options, std::io::stderr().is_terminal())
                .await
                .map_err(|e| format!("seeding failed: {e}"))?;
            tracing::info!(stocks, bars, "seeded");
        }
        Command::Import { ticker, file } => {
            let ticker = Ticker::parse(&ticker).map_err(|e| format!("--ticker {ticker}: {e}"))?;
            let input = std::fs::File::open(&file)
                .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            let bars = read_bars(input).map_err(|e| format!("{}: {e}", file.display()))?;
            let services = wire(settings).await.map_err(|e| e.to_string())?;
            let count = services
                .import(ticker.clone(), bars)
                .await
                .map_err(|e| format!("import into {ticker} failed, nothing imported: {e}"))?;
            tracing::info!(%ticker, bars = count, "imported");
        }
    }
    Ok(())
}
