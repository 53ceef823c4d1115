//! The dashboard served at `/`: an HTML page, its stylesheet and its
//! scripts (one per view: Stats, Calls, Traces), embedded in the binary so
//! it works offline (no CDN, no requests but to this server). The scripts
//! are files of their own, not inline, so the page's content security
//! policy can forbid every inline script and every other origin.

/// The page.
pub const PAGE: &str = include_str!("../assets/dashboard.html");

/// `Content-Security-Policy` of the page: scripts, styles and requests only
/// from this server, no inline scripts, no frames, no forms, no plugins.
/// Inline `style` attributes stay allowed: the charts colour their legends
/// with them.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; style-src-attr 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A file the page loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    /// `/dashboard.css`.
    Style,
    /// `/dashboard-errors.js`: collects script errors (the browser test
    /// reads them); loaded first, so even the main script's syntax errors
    /// are caught.
    ErrorCatcher,
    /// `/dashboard.js`: the Stats view (charts and sources).
    Script,
    /// `/dashboard-views.js`: what the Calls and Traces views share
    /// (building elements as text only, view switching).
    Views,
    /// `/dashboard-calls.js`: the Calls view (`/funcs.json`).
    Calls,
    /// `/dashboard-traces.js`: the Traces view (`/traces`).
    Traces,
}

impl Asset {
    const ALL: [Asset; 6] = [
        Asset::Style,
        Asset::ErrorCatcher,
        Asset::Script,
        Asset::Views,
        Asset::Calls,
        Asset::Traces,
    ];

    /// The asset served at `path`, if any.
    pub fn at(path: &str) -> Option<Asset> {
        Asset::ALL.into_iter().find(|asset| asset.path() == path)
    }

    /// Where it is served.
    pub fn path(self) -> &'static str {
        match self {
            Asset::Style => "/dashboard.css",
            Asset::ErrorCatcher => "/dashboard-errors.js",
            Asset::Script => "/dashboard.js",
            Asset::Views => "/dashboard-views.js",
            Asset::Calls => "/dashboard-calls.js",
            Asset::Traces => "/dashboard-traces.js",
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Asset::Style => "text/css; charset=utf-8",
            Asset::ErrorCatcher | Asset::Script | Asset::Views | Asset::Calls | Asset::Traces => {
                "text/javascript; charset=utf-8"
            }
        }
    }

    /// Its text.
    pub fn text(self) -> &'static str {
        match self {
            Asset::Style => include_str!("../assets/dashboard.css"),
            Asset::ErrorCatcher => include_str!("../assets/dashboard-errors.js"),
            Asset::Script => include_str!("../assets/dashboard.js"),
            Asset::Views => include_str!("../assets/dashboard-views.js"),
            Asset::Calls => include_str!("../assets/dashboard-calls.js"),
            Asset::Traces => include_str!("../assets/dashboard-traces.js"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_loads_its_assets_from_this_server_only_and_inlines_no_script() {
        for asset in Asset::ALL {
            assert!(PAGE.contains(&format!("\"{}\"", asset.path())), "{asset:?}");
            assert_eq!(Asset::at(asset.path()), Some(asset));
        }
        assert!(Asset::Style.text().contains("--accent:"));
        assert!(Asset::Script.text().contains("function renderCharts"));
        assert!(Asset::ErrorCatcher.text().contains("__dashboardErrors"));
        // Offline: no http(s) URL; no inline script (the policy forbids it).
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        let scripts = Asset::ALL
            .iter()
            .filter(|a| a.content_type().starts_with("text/javascript"))
            .count();
        assert_eq!(PAGE.matches("<script").count(), scripts);
        assert_eq!(PAGE.matches("<script src=\"/").count(), scripts);
        // The views build elements from text: no HTML string from data.
        for view in [Asset::Views, Asset::Calls, Asset::Traces] {
            assert!(!view.text().contains("innerHTML"), "{view:?}");
        }
        assert!(PAGE.contains(r#"<link rel="icon" href="data:,">"#));
        assert!(!CONTENT_SECURITY_POLICY.contains("script-src 'self' 'unsafe-inline'"));
    }
}
