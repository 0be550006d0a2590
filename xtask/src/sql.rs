//! `cargo xtask sql`: run one statement against Snowflake or fakesnow and print the result.

use anyhow::Context;
use snowflake::{Client, Config, Value};

#[derive(clap::Args)]
pub struct Args {
    /// The statement to run.
    sql: String,
    /// Use this running stack's Snowflake (fakesnow, or the account of an external stack).
    #[arg(long, value_name = "NAME", conflicts_with = "url", value_parser = parse_stack)]
    stack: Option<stack::StackName>,
    /// Base URL of a fakesnow server (e.g. http://127.0.0.1:8085). Without it or --stack the
    /// connection comes from SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or
    /// SNOWFLAKE_PRIVATE_KEY_PATH, and optionally SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE and
    /// SNOWFLAKE_URL.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Database for the session (default: SNOWFLAKE_DATABASE, if set).
    #[arg(long, env = "SNOWFLAKE_DATABASE")]
    database: Option<String>,
    /// Schema for the session (default: SNOWFLAKE_SCHEMA, if set).
    #[arg(long, env = "SNOWFLAKE_SCHEMA")]
    schema: Option<String>,
    /// Print {"columns": [...], "rows": [[...]]} instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_stack(s: &str) -> Result<stack::StackName, String> {
    s.parse()
        .map_err(|e: stack::InvalidStackName| e.to_string())
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let mut config = match (&self.stack, &self.url) {
            (Some(name), _) => snowflake::Config::from_state(
                &stack::State::load(&crate::stack_args::root(), name)?.snowflake,
            )?,
            (None, Some(url)) => Config::fakesnow(url)?,
            (None, None) => Config::from_env().context(
                "no --stack or --url given, so the connection comes from SNOWFLAKE_* variables",
            )?,
        };
        config.database = self.database.clone().or(config.database);
        config.schema = self.schema.clone().or(config.schema);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(self.query(config))
    }

    async fn query(self, config: Config) -> anyhow::Result<()> {
        let client = Client::connect(config).await.context("connecting")?;
        let result = client.query(&self.sql, &[]).await;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = client.close().await;
                return Err(e.into());
            }
        };
        let columns: Vec<String> = result.columns().iter().map(|c| c.name.clone()).collect();
        let types: Vec<String> = result
            .columns()
            .iter()
            .map(|c| format!("{:?}", c.ty).to_lowercase())
            .collect();
        let rows = result.rows().await?;
        client.close().await.context("closing the session")?;
        if self.json {
            let out = serde_json::json!({
                "columns": columns.iter().zip(&types).map(|(n, t)| serde_json::json!({"name": n, "type": t})).collect::<Vec<_>>(),
                "rows": rows.iter().map(|r| r.iter().map(Value::to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print_table(&columns, &rows);
        }
        Ok(())
    }
}

fn print_table(columns: &[String], rows: &[Vec<Value>]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .chain([columns[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", padded.join(" | ").trim_end());
    };
    line(columns);
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &cells {
        line(row);
    }
    println!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}
