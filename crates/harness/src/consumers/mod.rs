//! What the marts' consumers see: the example queries of `infra/dbt/analyses` (declared as dbt
//! exposures) run against a stack's warehouse, written as CSV files and one HTML page with a
//! chart per query ([`page`]); and dbt's docs site with the warehouse's real catalog, as one
//! static file.

pub mod page;

use std::path::{Path, PathBuf};

use snowflake::Value;

use crate::prove::dbt::{self, Dbt, DbtCommand, DbtConfig, DbtError};

#[derive(Debug, thiserror::Error)]
pub enum ConsumersError {
    #[error(transparent)]
    Dbt(#[from] DbtError),
    #[error("dbt {command} failed:\n{report}")]
    DbtFailed {
        command: &'static str,
        report: String,
    },
    #[error("the stack's warehouse: {0}")]
    Warehouse(#[from] snowflake::Error),
    #[error("the stack's warehouse: {0}")]
    Marts(#[from] crate::rig::warehouse::WarehouseError),
    #[error(
        "stack `{0}` has no marts yet: run `cargo xtask e2e --keep --stack {0} --scenario \
         scenarios/smoke.toml` (or any scenario) first"
    )]
    NoMarts(String),
    #[error("analysis {name} ({}): {source}", sql.display())]
    Query {
        name: String,
        sql: PathBuf,
        #[source]
        source: snowflake::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ConsumersError {
    let context = context.into();
    move |source| ConsumersError::Io { context, source }
}

/// One analysis and what the warehouse answered.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The file's stem, e.g. `top_selling_cards`.
    pub name: String,
    /// What the query answers: its leading comment up to the first colon.
    pub title: String,
    /// The whole leading comment.
    pub description: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// dbt for `state`'s warehouse, in the folders `e2e` uses (so its parse is reused).
fn dbt_for(state: &stack::State) -> Result<Dbt, DbtError> {
    Dbt::new(DbtConfig::for_stack(state, dbt::work_dir(state), true))
}

/// A connection to `state`'s warehouse, once it holds the marts (the queries and the catalog
/// are about them).
async fn warehouse_with_marts(state: &stack::State) -> Result<snowflake::Client, ConsumersError> {
    let sf = snowflake::Client::connect(snowflake::Config::from_state(&state.snowflake)?).await?;
    if !crate::rig::warehouse::marts_exist(&sf).await? {
        let _ = sf.close().await;
        return Err(ConsumersError::NoMarts(state.stack.as_str().to_owned()));
    }
    Ok(sf)
}

async fn invoke_one(dbt: &Dbt, command: DbtCommand) -> Result<(), ConsumersError> {
    let reports = dbt.invoke(&[command]).await?;
    match reports.first() {
        Some(report) if report.ok() => Ok(()),
        Some(report) => Err(ConsumersError::DbtFailed {
            command: command.as_str(),
            report: report.to_string(),
        }),
        None => Err(ConsumersError::DbtFailed {
            command: command.as_str(),
            report: "no report".into(),
        }),
    }
}

/// Compiles every analysis for `state`'s warehouse and runs it there, in name order.
pub async fn run_analyses(state: &stack::State) -> Result<Vec<Analysis>, ConsumersError> {
    let sf = warehouse_with_marts(state).await?;
    let dbt = dbt_for(state)?;
    invoke_one(&dbt, DbtCommand::CompileAnalyses).await?;
    let compiled = dbt.target_path().join("compiled/sluice/analyses");
    let sources = dbt.config().project_dir.join("analyses");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&compiled)
        .map_err(io_err(format!("listing {}", compiled.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut analyses = Vec::new();
    for file in files {
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let sql = std::fs::read_to_string(&file)
            .map_err(io_err(format!("reading {}", file.display())))?;
        let query_err = |source| ConsumersError::Query {
            name: name.clone(),
            sql: file.clone(),
            source,
        };
        let result = sf.query(&sql, &[]).await.map_err(query_err)?;
        let columns = result
            .columns()
            .iter()
            .map(|c| c.name.to_lowercase())
            .collect();
        let rows = result.rows().await.map_err(query_err)?;
        let description = leading_comment(&sources.join(format!("{name}.sql")));
        analyses.push(Analysis {
            title: match description.split_once(':') {
                Some((title, _)) => title.trim().to_owned(),
                None if description.is_empty() => name.clone(),
                None => description.clone(),
            },
            description,
            name,
            columns,
            rows,
        });
    }
    let _ = sf.close().await;
    Ok(analyses)
}

/// The `--` comment lines an analysis's source starts with, joined.
fn leading_comment(source: &Path) -> String {
    let text = std::fs::read_to_string(source).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map_while(|l| l.trim().strip_prefix("--"))
        .map(str::trim)
        .collect();
    lines.join(" ")
}

/// Writes each analysis as `<name>.csv` and all of them as `index.html` in `dir`; returns the
/// files written, the page first.
pub fn write_report(
    dir: &Path,
    stack: &str,
    analyses: &[Analysis],
) -> Result<Vec<PathBuf>, ConsumersError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let index = dir.join("index.html");
    std::fs::write(&index, page::html(stack, analyses))
        .map_err(io_err(format!("writing {}", index.display())))?;
    let mut written = vec![index];
    for analysis in analyses {
        let path = dir.join(format!("{}.csv", analysis.name));
        std::fs::write(&path, page::csv(analysis))
            .map_err(io_err(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// dbt's docs site for `state`'s warehouse, catalog included, copied to `out` (one file that
/// opens in a browser without a server).
pub async fn write_docs(state: &stack::State, out: &Path) -> Result<PathBuf, ConsumersError> {
    let _ = warehouse_with_marts(state).await?.close().await;
    let dbt = dbt_for(state)?;
    invoke_one(&dbt, DbtCommand::DocsGenerate).await?;
    let built = dbt.target_path().join("static_index.html");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    std::fs::copy(&built, out).map_err(io_err(format!(
        "copying {} to {}",
        built.display(),
        out.display()
    )))?;
    Ok(out.to_owned())
}
