//! `cargo xtask sql` against a real fakesnow server.

use std::process::{Command, Output};

fn sql(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["sql", "--url", url])
        .args(args)
        .env_remove("SNOWFLAKE_DATABASE")
        .env_remove("SNOWFLAKE_SCHEMA")
        .output()
        .expect("xtask runs")
}

#[test]
fn prints_a_table_json_and_clear_errors() {
    let server = testkit::Fakesnow::start();
    let url = server.base_url();

    let out = sql(&url, &["SELECT 1 AS ONE, 'two' AS TWO, NULL AS NOTHING"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ONE | TWO | NOTHING");
    assert_eq!(lines[2], "1   | two | NULL");
    assert_eq!(lines[3], "(1 row)");

    let out = sql(
        &url,
        &["--json", "SELECT 7 AS N, PARSE_JSON('{\"a\": [1]}') AS V"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["columns"][0]["name"], "N");
    assert_eq!(json["rows"][0][0], 7);
    assert_eq!(json["rows"][0][1]["a"][0], 1);

    let out = sql(&url, &["CREATE DATABASE IF NOT EXISTS CLI"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sql(
        &url,
        &[
            "--database",
            "CLI",
            "--schema",
            "PUBLIC",
            "SELECT * FROM missing",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("SQL error 002003") && err.contains("MISSING"),
        "{err}"
    );

    let closed = testkit::free_port();
    let out = sql(&format!("http://127.0.0.1:{closed}"), &["SELECT 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot reach Snowflake") && err.contains(&closed.to_string()),
        "{err}"
    );
}
