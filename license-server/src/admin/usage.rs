//! `GET /api/usage?from=…&to=…&slot=…&site=…&format=csv|json&report=summary|events|series`:
//! the usage history of the server's state database ([`crate::usage`]) for a period: the
//! summary (default) or the raw events, as JSON (default) or CSV, or the series the status
//! page's charts draw (JSON). Bad parameters answer 400 saying which; a server without a state
//! database answers 404.

use http::StatusCode;
use ops_http::{Reply, Request, csv_reply, error_reply, json_reply};

use crate::server::LicenseServer;
use crate::usage::{self, UsageQuery, period, render};

/// What the query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Summary,
    Events,
    Series,
}

/// The parameters of a request, checked.
struct Params {
    query: UsageQuery,
    report: Report,
    csv: bool,
}

fn params(req: &Request, now_ms: u64) -> Result<Params, String> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let (from_ms, to_ms) =
        period::period(get("from"), get("to"), now_ms).map_err(|e| e.to_string())?;
    let slot = match get("slot").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<u16>()
                .map_err(|_| format!("slot={s:?} is not an AppSlot number"))?,
        ),
    };
    let csv = match get("format").unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return Err(format!("format={other:?}: expected csv or json")),
    };
    let report = match get("report").unwrap_or("summary") {
        "summary" => Report::Summary,
        "events" => Report::Events,
        "series" if csv => return Err("report=series is JSON only (format=json)".to_owned()),
        "series" => Report::Series,
        other => {
            return Err(format!(
                "report={other:?}: expected summary, events or series"
            ));
        }
    };
    Ok(Params {
        query: UsageQuery {
            from_ms,
            to_ms,
            slot,
            site: get("site").map(str::to_owned),
            now_ms,
        },
        report,
        csv,
    })
}

/// Answers one request.
pub(super) async fn reply(server: &LicenseServer, req: &Request) -> Reply {
    let p = match params(req, server.wall_millis()) {
        Ok(p) => p,
        Err(message) => return error_reply(StatusCode::BAD_REQUEST, &message),
    };
    let Some(store) = server.store() else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "no usage history: the server keeps none without a state database (StateDb=)",
        );
    };
    let (query, report, csv) = (p.query, p.report, p.csv);
    let answer = store
        .read(move |conn| match report {
            Report::Summary => usage::summary(conn, &query).map(|s| {
                if csv {
                    render::summary_csv(&s).map(|body| csv_reply(body, "usage-summary.csv"))
                } else {
                    Ok(json_reply(StatusCode::OK, &s))
                }
            }),
            Report::Series => {
                usage::series(conn, &query).map(|s| Ok(json_reply(StatusCode::OK, &s)))
            }
            Report::Events => usage::events(conn, &query).map(|e| {
                if csv {
                    render::events_csv(&e).map(|body| csv_reply(body, "usage-events.csv"))
                } else {
                    Ok(json_reply(StatusCode::OK, &e))
                }
            }),
        })
        .await;
    match answer.map(|read| read.and_then(|a| a)) {
        Some(Ok(Ok(reply))) => reply,
        Some(Ok(Err(e))) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Some(Err(e)) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read the usage history: {e}"),
        ),
        None => error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state database is closed (the server is stopping)",
        ),
    }
}
