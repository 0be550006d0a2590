//! Protocol paths a fakesnow server does not take, over real HTTP against a scripted server.

use std::io::Write;

use serde_json::json;
use snowflake::{Client, Config, Error, PutOptions, Value};
use testkit::http::{Response, ScriptedServer};

fn login_ok() -> Response {
    Response::json(json!({"data": {"token": "t1", "masterToken": "m1"}, "success": true}))
}

fn config(server: &ScriptedServer) -> Config {
    let mut config = Config::fakesnow(&server.url()).unwrap();
    config.retry.initial_backoff = std::time::Duration::from_millis(10);
    config
}

#[tokio::test]
async fn chunked_results_are_downloaded_with_their_headers_in_both_formats() {
    let arrow_fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/arrow_rowset.json")).unwrap();
    let arrow_rowtype = arrow_fixture["data"]["rowtype"].clone();
    let arrow_chunk = base64_decode(arrow_fixture["data"]["rowsetBase64"].as_str().unwrap());
    let server = ScriptedServer::start(move |req, _| match req.path() {
        "/session/v1/login-request" => login_ok(),
        "/queries/v1/query-request" if req.json()["sqlText"] == "json" => {
            let base = format!("http://{}", req.headers["host"]);
            Response::json(json!({"success": true, "data": {
                "rowtype": [{"name": "N", "type": "fixed", "scale": 0}],
                "queryResultFormat": "json", "rowset": [["1"]], "total": 4,
                "chunks": [{"url": format!("{base}/chunks/a?sig=secret"), "rowCount": 2}, {"url": format!("{base}/chunks/b"), "rowCount": 1}],
                "chunkHeaders": {"x-amz-server-side-encryption-customer-key": "k"},
            }}))
        }
        "/queries/v1/query-request" => {
            let base = format!("http://{}", req.headers["host"]);
            Response::json(json!({"success": true, "data": {
                "rowtype": arrow_rowtype, "queryResultFormat": "arrow", "rowsetBase64": "",
                "chunks": [{"url": format!("{base}/chunks/arrow"), "rowCount": 2}], "qrmk": "master-key",
            }}))
        }
        "/chunks/a" => Response::status(200, br#"["2"],["3"]"#.to_vec()),
        "/chunks/b" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(br#"[null]"#).unwrap();
            Response::status(200, gz.finish().unwrap())
        }
        "/chunks/arrow" => Response::status(200, arrow_chunk.clone()),
        other => Response::status(404, other),
    });
    let client = Client::connect(config(&server)).await.unwrap();

    let rows = client
        .query("json", &[])
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    let flat: Vec<Value> = rows.into_iter().flatten().collect();
    assert_eq!(
        flat,
        vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Null]
    );

    let mut result = client.query("arrow", &[]).await.unwrap();
    let batch = result
        .next_batch()
        .await
        .unwrap()
        .expect("the chunk's batch");
    assert_eq!(batch.get::<String>(0, 3).unwrap(), "héllo");
    assert!(result.next_batch().await.unwrap().is_none());

    let requests = server.requests();
    let chunk_a = requests.iter().find(|r| r.path() == "/chunks/a").unwrap();
    assert_eq!(
        chunk_a.headers["x-amz-server-side-encryption-customer-key"],
        "k"
    );
    assert!(
        !chunk_a.headers.contains_key("authorization"),
        "the session token never goes to storage"
    );
    let arrow = requests
        .iter()
        .find(|r| r.path() == "/chunks/arrow")
        .unwrap();
    assert_eq!(
        arrow.headers["x-amz-server-side-encryption-customer-key"],
        "master-key"
    );
    assert_eq!(
        arrow.headers["x-amz-server-side-encryption-customer-algorithm"],
        "AES256"
    );
}

#[tokio::test]
async fn an_expired_session_is_renewed_with_the_master_token_and_the_query_retried() {
    let server = ScriptedServer::start(|req, _| {
        match (
            req.path(),
            req.headers.get("authorization").map(String::as_str),
        ) {
            ("/session/v1/login-request", _) => login_ok(),
            ("/queries/v1/query-request", Some(r#"Snowflake Token="t1""#)) => Response::json(
                json!({"success": false, "code": "390112", "message": "Your session has expired. Please login again.", "data": null}),
            ),
            ("/session/token-request", Some(r#"Snowflake Token="m1""#))
                if req.json()["oldSessionToken"] == "t1" =>
            {
                Response::json(
                    json!({"success": true, "data": {"sessionToken": "t2", "masterToken": "m2"}}),
                )
            }
            ("/queries/v1/query-request", Some(r#"Snowflake Token="t2""#)) => {
                Response::json(json!({"success": true, "data": {
            "rowtype": [{"name": "X", "type": "text"}], "queryResultFormat": "json", "rowset": [["renewed"]]}}))
            }
            _ => Response::status(401, "unexpected"),
        }
    });
    let client = Client::connect(config(&server)).await.unwrap();
    let rows = client
        .query("SELECT 'renewed'", &[])
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Value::Text("renewed".into())]]);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/session/v1/login-request",
            "/queries/v1/query-request",
            "/session/token-request",
            "/queries/v1/query-request"
        ]
    );
}

#[tokio::test]
async fn overload_is_retried_but_a_server_side_failure_is_not() {
    let server = ScriptedServer::start(|req, n| {
        match req.path() {
        "/session/v1/login-request" => login_ok(),
        _ if req.json()["sqlText"] == "busy" && n <= 2 => Response::status(503, "try later"),
        _ if req.json()["sqlText"] == "busy" => Response::json(json!({"success": true, "data": {
            "rowtype": [{"name": "X", "type": "fixed"}], "queryResultFormat": "json", "rowset": [["7"]]}})),
        _ => Response::status(500, json!({"success": false, "code": "261000", "message": "Unhandled exception", "data": null}).to_string()),
    }
    });
    let client = Client::connect(config(&server)).await.unwrap();
    let rows = client
        .query("busy", &[])
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::Int(7));
    assert_eq!(server.requests().len(), 4, "login + two 503s + success");

    let err = client.query("broken", &[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Sql { code, .. } if code == "261000"),
        "{err:?}"
    );
    assert_eq!(
        server.requests().len(),
        5,
        "a statement that failed on the server is not re-run"
    );
}

#[tokio::test]
async fn stage_types_not_implemented_are_refused_not_skipped() {
    let server = ScriptedServer::start(|req, _| match req.path() {
        "/session/v1/login-request" => login_ok(),
        _ => Response::json(json!({"success": true, "data": {"command": "UPLOAD",
            "stageInfo": {"locationType": "S3", "location": "bucket/stages/abc/", "creds": {"AWS_KEY_ID": "x"}}}})),
    });
    let client = Client::connect(config(&server)).await.unwrap();
    let err = client
        .put_bytes("@RAW.STAGE", "f.ndjson", "{}", PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("S3"), "{err}");
}

#[tokio::test]
async fn refused_login_is_an_auth_error_with_its_code() {
    let server = ScriptedServer::start(|_, _| {
        Response::json(
            json!({"success": false, "code": "390100", "message": "Incorrect username or password was specified.", "data": null}),
        )
    });
    let err = Client::connect(config(&server)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { code, .. } if code == "390100"),
        "{err:?}"
    );
    let login = &server.requests()[0];
    assert_eq!(
        login.json()["data"]["PASSWORD"],
        "sluice",
        "the password goes in the body only"
    );
    assert!(!login.target.contains("sluice"), "and never in the URL");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
