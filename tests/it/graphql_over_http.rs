//! The GraphQL-over-HTTP spec's server audits (the `graphql-http`
//! package's `serverAudits`, here as a table), run against `/graphql`:
//! every MUST and every SHOULD holds, and every MAY too.
//!
//! A Content-Type check passes when the header contains the media type
//! (parameters such as `charset` are fine); "no errors" means the body has
//! no `errors` entry at all; "no data" means no `data` entry (not even
//! `null`).

use hub_tests::raw::{request, RawAnswer};
use hub_tests::{TestDb, TestHub};
use serde_json::Value;

const GRJ: &str = "application/graphql-response+json";
const JSON: &str = "application/json";
const Q0: &str = r#"{"query":"{ __typename }"}"#;
const PARSE_FAILURE: &str = r#"{"query":"{"}"#;
const VALIDATION_FAILURE: &str = r#"{"query":"{ 8f31403dfe404bccbb0e835f2629c6a7 }"}"#;
const COERCION_FAILURE: &str =
    r#"{"query":"query CoerceFailure($id: ID!){ __typename }","variables":{"id":null}}"#;
const TYPE_QUERY: &str = r#"{"query":"query Type($name: String!) { __type(name: $name) { name } }","variables":{"name":"sometype"}}"#;
const GET_TYPE_QUERY: &str = "/graphql?query=query+Type%28%24name%3A+String%21%29+%7B+__type%28name%3A+%24name%29+%7B+name+%7D+%7D&variables=%7B%22name%22%3A%22sometype%22%7D";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Must,
    Should,
    May,
}

/// What the answer must show.
#[derive(Clone, Copy, Debug)]
enum Check {
    Status(u16),
    StatusBetween(u16, u16),
    /// 2xx, 4xx or 5xx.
    AnyOfTheThree,
    /// 200 and a Content-Type containing this.
    OkWithType(&'static str),
    /// 200 and no `errors` entry.
    OkWithoutErrors,
    /// No `data` entry (status not checked).
    NoData,
}

struct Audit {
    id: &'static str,
    level: Level,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: &'static str,
    check: Check,
}

const fn post(
    id: &'static str,
    level: Level,
    accept: Option<&'static str>,
    body: &'static str,
    check: Check,
) -> Audit {
    Audit {
        id,
        level,
        method: "POST",
        path: "/graphql",
        content_type: Some(JSON),
        accept,
        body,
        check,
    }
}

fn audits() -> Vec<Audit> {
    use Check::*;
    use Level::*;
    let mut all = vec![
        post("22EB", Should, Some(GRJ), Q0, OkWithType(GRJ)),
        post("4655", Must, Some(JSON), Q0, OkWithType(JSON)),
        post("47DE", Should, Some("*/*"), Q0, OkWithType(JSON)),
        post("80D8", Should, None, Q0, OkWithType(JSON)),
        post("82A3", Must, None, Q0, Status(200)),
        Audit {
            content_type: Some("application/json; charset=utf-8"),
            ..post(
                "BF61",
                Must,
                None,
                r#"{"query":"{ __type(name: \"Run🏃Swim🏊\") { name } }"}"#,
                Status(200),
            )
        },
        post("78D5", Must, None, Q0, Status(200)),
        post("2C94", Must, None, Q0, Status(200)),
        Audit {
            method: "GET",
            path: "/graphql?query=%7B+__typename+%7D",
            content_type: None,
            ..post("5A70", May, None, "", Status(200))
        },
        Audit {
            method: "GET",
            path: "/graphql?query=mutation+%7B+__typename+%7D",
            content_type: None,
            ..post("9C48", May, Some(GRJ), "", StatusBetween(400, 499))
        },
        // A fetch with a string body and no headers sends text/plain.
        Audit {
            content_type: Some("text/plain;charset=UTF-8"),
            ..post("9ABE", Should, None, Q0, StatusBetween(400, 499))
        },
        post("03D4", Must, None, Q0, Status(200)),
        post("A5BF", May, None, "", Status(400)),
        post(
            "423L",
            May,
            Some(GRJ),
            r#"{"notquery":"{ __typename }"}"#,
            Status(400),
        ),
        post("LKJ0", May, None, r#"{"query":{"obj":"ect"}}"#, Status(400)),
        post("LKJ1", May, None, r#"{"query":0}"#, Status(400)),
        post("LKJ2", May, None, r#"{"query":false}"#, Status(400)),
        post("LKJ3", May, None, r#"{"query":["array"]}"#, Status(400)),
        post("34A2", Should, Some(GRJ), Q0, Status(200)),
        post("13EE", Must, Some(JSON), Q0, OkWithoutErrors),
        post(
            "6C00",
            May,
            None,
            r#"{"operationName":{"obj":"ect"},"query":"{ __typename }"}"#,
            Status(400),
        ),
        post(
            "6C01",
            May,
            None,
            r#"{"operationName":0,"query":"{ __typename }"}"#,
            Status(400),
        ),
        post(
            "6C02",
            May,
            None,
            r#"{"operationName":false,"query":"{ __typename }"}"#,
            Status(400),
        ),
        post(
            "6C03",
            May,
            None,
            r#"{"operationName":["array"],"query":"{ __typename }"}"#,
            Status(400),
        ),
        post(
            "8161",
            Should,
            Some(GRJ),
            r#"{"operationName":"Query","query":"query Query { __typename }"}"#,
            Status(200),
        ),
        post(
            "B8B3",
            Must,
            Some(JSON),
            r#"{"operationName":"Query","query":"query Query { __typename }"}"#,
            OkWithoutErrors,
        ),
        post(
            "94B0",
            Should,
            Some(GRJ),
            r#"{"query":"{ __typename }","variables":null}"#,
            OkWithoutErrors,
        ),
        post(
            "0220",
            Must,
            Some(JSON),
            r#"{"query":"{ __typename }","variables":null}"#,
            OkWithoutErrors,
        ),
        post(
            "94B1",
            Should,
            Some(GRJ),
            r#"{"query":"{ __typename }","operationName":null}"#,
            OkWithoutErrors,
        ),
        post(
            "0221",
            Must,
            Some(JSON),
            r#"{"query":"{ __typename }","operationName":null}"#,
            OkWithoutErrors,
        ),
        post(
            "94B2",
            Should,
            Some(GRJ),
            r#"{"query":"{ __typename }","extensions":null}"#,
            OkWithoutErrors,
        ),
        post(
            "0222",
            Must,
            Some(JSON),
            r#"{"query":"{ __typename }","extensions":null}"#,
            OkWithoutErrors,
        ),
        post(
            "4760",
            May,
            None,
            r#"{"query":"{ __typename }","variables":"string"}"#,
            Status(400),
        ),
        post(
            "4761",
            May,
            None,
            r#"{"query":"{ __typename }","variables":0}"#,
            Status(400),
        ),
        post(
            "4762",
            May,
            None,
            r#"{"query":"{ __typename }","variables":false}"#,
            Status(400),
        ),
        post(
            "4763",
            May,
            None,
            r#"{"query":"{ __typename }","variables":["array"]}"#,
            Status(400),
        ),
        post("2EA1", Should, Some(GRJ), TYPE_QUERY, Status(200)),
        post("28B9", Must, Some(JSON), TYPE_QUERY, OkWithoutErrors),
        Audit {
            method: "GET",
            path: GET_TYPE_QUERY,
            content_type: None,
            ..post("D6D5", May, Some(GRJ), "", OkWithoutErrors)
        },
        Audit {
            method: "GET",
            path: GET_TYPE_QUERY,
            content_type: None,
            ..post("6A70", May, Some(JSON), "", OkWithoutErrors)
        },
        post(
            "58B0",
            May,
            None,
            r#"{"query":"{ __typename }","extensions":"string"}"#,
            Status(400),
        ),
        post(
            "58B1",
            May,
            None,
            r#"{"query":"{ __typename }","extensions":0}"#,
            Status(400),
        ),
        post(
            "58B2",
            May,
            None,
            r#"{"query":"{ __typename }","extensions":false}"#,
            Status(400),
        ),
        post(
            "58B3",
            May,
            None,
            r#"{"query":"{ __typename }","extensions":["array"]}"#,
            Status(400),
        ),
        post(
            "428F",
            Should,
            Some(GRJ),
            r#"{"query":"{ __typename }","extensions":{"some":"value"}}"#,
            Status(200),
        ),
        post(
            "1B7A",
            Must,
            Some(JSON),
            r#"{"query":"{ __typename }","extensions":{"some":"value"}}"#,
            OkWithoutErrors,
        ),
        post("B6DC", May, Some(JSON), r#"{ "not a JSON"#, AnyOfTheThree),
        post("BCF8", Should, Some(JSON), r#"{ "not a JSON"#, Status(400)),
        post("B7N8", Should, Some(GRJ), r#"{ "not a JSON"#, Status(400)),
        post(
            "8764",
            May,
            None,
            r#"{"qeury":"{ __typename }"}"#,
            StatusBetween(400, 599),
        ),
        post(
            "3E3A",
            May,
            None,
            r#"{"qeury":"{ __typename }"}"#,
            Status(400),
        ),
        post("572B", Should, Some(JSON), PARSE_FAILURE, Status(200)),
        post("FDE2", Should, Some(JSON), VALIDATION_FAILURE, Status(200)),
        post("7B9B", Should, Some(JSON), COERCION_FAILURE, Status(200)),
        post(
            "865D",
            Should,
            Some(GRJ),
            PARSE_FAILURE,
            StatusBetween(400, 599),
        ),
        post("556A", Should, Some(GRJ), PARSE_FAILURE, Status(400)),
        post("D586", Should, Some(GRJ), PARSE_FAILURE, NoData),
        post(
            "51FE",
            Should,
            Some(GRJ),
            VALIDATION_FAILURE,
            StatusBetween(400, 599),
        ),
        post("74FF", Should, Some(GRJ), VALIDATION_FAILURE, Status(400)),
        post("5E5B", Should, Some(GRJ), VALIDATION_FAILURE, NoData),
        post("86EE", Should, Some(GRJ), COERCION_FAILURE, Status(400)),
    ];
    all.shrink_to_fit();
    all
}

/// Why `answer` fails `check`, if it does.
fn failure(answer: &RawAnswer, check: Check) -> Option<String> {
    let status = answer.status;
    let body: Option<Value> = serde_json::from_str(&answer.body).ok();
    let content_type = answer.header("content-type").unwrap_or("");
    let ok = match check {
        Check::Status(expected) => status == expected,
        Check::StatusBetween(low, high) => (low..=high).contains(&status),
        Check::AnyOfTheThree => matches!(status, 200..=299 | 400..=599),
        Check::OkWithType(media) => status == 200 && content_type.contains(media),
        Check::OkWithoutErrors => {
            status == 200 && body.as_ref().is_some_and(|b| b.get("errors").is_none())
        }
        Check::NoData => body.as_ref().is_some_and(|b| b.get("data").is_none()),
    };
    (!ok).then(|| format!("{status} {content_type}: {}", answer.body))
}

#[tokio::test]
async fn every_server_audit_of_the_graphql_over_http_spec_passes() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let addr = hub.url().trim_start_matches("http://").to_owned();
    let audits = audits();
    assert_eq!(audits.len(), 61, "the whole list");
    let mut failed = Vec::new();
    for audit in &audits {
        let mut headers = vec![("Host", addr.as_str())];
        if let Some(content_type) = audit.content_type {
            headers.push(("content-type", content_type));
        }
        if let Some(accept) = audit.accept {
            headers.push(("accept", accept));
        }
        let answer = request(&addr, audit.method, audit.path, &headers, audit.body).await;
        if let Some(why) = failure(&answer, audit.check) {
            failed.push(format!("{} ({:?}): {why}", audit.id, audit.level));
        }
    }
    assert!(failed.is_empty(), "failed audits:\n{}", failed.join("\n"));
}
