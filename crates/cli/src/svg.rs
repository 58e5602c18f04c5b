//! A bar chart of `report`'s figures, as SVG written by hand: per package, the signature
//! growth in percent of the package and the Merkle tree overhead in percent of the payload.

use std::fmt::Write as _;

use verity_package::report::Report;

const LABEL_WIDTH: f64 = 320.0;
const BAR_WIDTH: f64 = 480.0;
const ROW: f64 = 36.0;
const TOP: f64 = 50.0;

/// Text for SVG character data and attribute values; control characters (not allowed in XML
/// 1.0) are spelled out first.
fn xml(s: &str) -> String {
    crate::render::escape(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart: one row per package that could be read, two bars each, scaled to the largest
/// percentage.
pub fn bar_chart(r: &Report) -> String {
    let rows: Vec<_> = r.packages.iter().filter(|p| p.error.is_none()).collect();
    let max = rows
        .iter()
        .flat_map(|p| [p.sizes.signature_growth_percent, p.sizes.tree_percent])
        .fold(0.0f64, f64::max)
        .max(0.001);
    let width = LABEL_WIDTH + BAR_WIDTH + 90.0;
    let height = TOP + ROW * rows.len() as f64 + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<text x="10" y="18" font-size="14">fs-verity cost per package ({} signatures: {} bytes {}{})</text>
<rect x="10" y="28" width="10" height="10" fill="#3b6fb6"/><text x="24" y="37">signature growth, % of package</text>
<rect x="230" y="28" width="10" height="10" fill="#e08a2c"/><text x="244" y="37">Merkle trees, % of payload</text>"##,
        xml(&r.signature.key),
        r.signature.bytes,
        if r.signature.upper_bound {
            "at most"
        } else {
            "each"
        },
        if r.signature.exact { "" } else { ", estimate" }
    );
    for (i, p) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let name = std::path::Path::new(&p.package)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.package.clone());
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 20.0,
            xml(&name)
        );
        for (k, (value, color)) in [
            (p.sizes.signature_growth_percent, "#3b6fb6"),
            (p.sizes.tree_percent, "#e08a2c"),
        ]
        .into_iter()
        .enumerate()
        {
            let by = y + 4.0 + 14.0 * k as f64;
            let w = (value.max(0.0) / max * BAR_WIDTH).max(0.5);
            let _ = writeln!(
                out,
                r#"<rect x="{LABEL_WIDTH}" y="{by}" width="{w:.1}" height="12" fill="{color}"/><text x="{:.1}" y="{}">{value:.2}%</text>"#,
                LABEL_WIDTH + w + 4.0,
                by + 10.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(super::xml("a<b>&\"c\x1b"), "a&lt;b&gt;&amp;&quot;c\\x1b");
    }
}
