//! The dashboard page served at `/`: one HTML file with its stylesheet and
//! script inlined, embedded in the binary, so it works offline (no CDN, no
//! extra requests but `/stats` and `/history`).

use std::sync::OnceLock;

const HTML: &str = include_str!("../assets/dashboard.html");
const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// The page: `assets/dashboard.html` with `assets/dashboard.css` and
/// `assets/dashboard.js` put in place of its two markers (built once).
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        HTML.replacen("/*STYLE*/", CSS, 1)
            .replacen("//SCRIPT", JS, 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_inlines_style_and_script_and_loads_nothing_from_outside() {
        let page = page();
        assert!(page.contains("--accent:"), "stylesheet inlined");
        assert!(page.contains("function renderCharts"), "script inlined");
        assert!(!page.contains("/*STYLE*/") && !page.contains("<script>//SCRIPT"));
        // Offline: no http(s) URL, no src= or href= but an inline data: URI
        // (the empty favicon that stops the browser asking for one).
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains(" src="));
        assert_eq!(page.matches(" href=").count(), 1);
        assert!(page.contains(r#"<link rel="icon" href="data:,">"#));
    }
}
