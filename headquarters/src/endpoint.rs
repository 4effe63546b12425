//! The headquarters endpoint (on [`ops_http`], like the admin endpoint it reads: bearer token,
//! loopback unless a token is configured, same-origin actions, hardened headers):
//!
//! | route | access | what |
//! |---|---|---|
//! | `GET /` (`/hq.js`, `/token.js`, `/style.css`, `/vendor/uplot/…`) | public | the page (no data; it asks for the token) |
//! | `GET /api/hosts?from=…&to=…` | token | [`HostsView`](crate::HostsView): every host, asked now |
//!
//! The page is the status page's look (its style sheet and uPlot, served from here too); its
//! script reads `api/hosts` with the token, shows a table per host and the combined table, and
//! draws each host's seats in use over the period.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use ops_http::{Asset, BearerToken, OpsError, Request, Router, json_reply};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::HostConfig;
use crate::view::{self, Period};

const INDEX: Asset = Asset::html(include_str!("page/index.html"));
const SCRIPT: Asset = Asset::javascript(include_str!("page/hq.js"));

/// The hosts and how long each may take.
#[derive(Debug)]
struct Hosts {
    hosts: Vec<HostConfig>,
    limit: Duration,
}

/// The routes of the headquarters view of `hosts`, each asked within `limit` per request.
pub fn router(hosts: Vec<HostConfig>, limit: Duration) -> Router {
    let hosts = Arc::new(Hosts { hosts, limit });
    license_server::admin::page::shared(Router::new())
        .asset("/", INDEX)
        .asset("/index.html", INDEX)
        .asset("/hq.js", SCRIPT)
        .get("/api/hosts", move |req: Request| {
            let hosts = hosts.clone();
            async move {
                let period = period(&req);
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let view = view::gather(&hosts.hosts, &period, hosts.limit, now_ms).await;
                json_reply(StatusCode::OK, &view)
            }
        })
}

/// `from` and `to` of the request's query, passed on to the hosts as they are (each host
/// checks them and says what is wrong).
fn period(req: &Request) -> Period {
    let mut period = Period::default();
    for (name, value) in url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
    {
        match name.as_ref() {
            "from" => period.from = Some(value.into_owned()),
            "to" => period.to = Some(value.into_owned()),
            _ => {}
        }
    }
    period
}

/// Serves the view of `hosts` on `listener` with `token` until `shutdown`.
///
/// # Errors
/// As [`ops_http::serve`].
pub async fn serve(
    listener: TcpListener,
    hosts: Vec<HostConfig>,
    limit: Duration,
    token: BearerToken,
    shutdown: CancellationToken,
) -> Result<(), OpsError> {
    ops_http::serve(listener, router(hosts, limit), Some(token), shutdown).await
}
