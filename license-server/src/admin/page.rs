//! The status page: plain HTML, three small scripts and a style sheet, compiled into the binary
//! (no CDN, nothing fetched from elsewhere). The page holds no data; its script reads
//! `api/status` with the bearer token every few seconds and posts the Disconnect and Logout
//! actions; its chart script reads `api/usage?report=series` and draws the usage history with
//! uPlot 1.6.32 (MIT, vendored unchanged in `page/vendor/uplot/`, see its `VENDORED.md`),
//! served from `/vendor/uplot/`. Every file comes from the page's own origin, as its
//! Content-Security-Policy requires (no inline script or style).
//!
//! The token reaches the page in the URL's fragment (`http://127.0.0.1:12380/#token=…`, which
//! browsers never send to a server, so it appears in no request line or log) or through the
//! page's token field; `token.js` (shared with the headquarters page) keeps it in
//! `sessionStorage` (this tab only) and removes the fragment from the address bar.

use ops_http::{Asset, Router};

const INDEX: Asset = Asset::html(include_str!("page/index.html"));
const SCRIPT: Asset = Asset::javascript(include_str!("page/app.js"));
const TOKEN: Asset = Asset::javascript(include_str!("page/token.js"));
const STYLE: Asset = Asset::css(include_str!("page/style.css"));
const CHARTS: Asset = Asset::javascript(include_str!("page/charts.js"));
const UPLOT: Asset = Asset::javascript(include_str!("page/vendor/uplot/uPlot.iife.min.js"));
const UPLOT_STYLE: Asset = Asset::css(include_str!("page/vendor/uplot/uPlot.min.css"));

/// Adds the page's files to `router`.
pub(super) fn routes(router: Router) -> Router {
    shared(
        router
            .asset("/", INDEX)
            .asset("/index.html", INDEX)
            .asset("/app.js", SCRIPT)
            .asset("/charts.js", CHARTS),
    )
}

/// Adds the files another page of the same look uses (the headquarters view): the style sheet
/// at `/style.css`, the token's keeping at `/token.js` and uPlot at `/vendor/uplot/`.
pub fn shared(router: Router) -> Router {
    router
        .asset("/style.css", STYLE)
        .asset("/token.js", TOKEN)
        .asset("/vendor/uplot/uPlot.iife.min.js", UPLOT)
        .asset("/vendor/uplot/uPlot.min.css", UPLOT_STYLE)
}
