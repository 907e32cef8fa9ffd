//! `index.html`: the same content as `report.md` in one self-contained page. Plots are inline
//! SVG and the style an inline `<style>`; nothing is loaded from anywhere (no script, font,
//! stylesheet or image URL), so the file opens from a USB stick with no network.

use super::compare::pct;
use super::data::{BaselineOutcome, WorkloadReport};
use super::md::{headline, summary_rows, verdict_words, SUMMARY_HEADER};
use super::plots::Plot;

const STYLE: &str = "body{font-family:sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#111}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #999;padding:.2rem .5rem;text-align:left}\
th{background:#eee}.missing{font-style:italic;color:#444;border-left:4px solid #999;padding-left:.5rem}\
.est{font-weight:bold}figure{margin:1rem 0}svg{max-width:100%;height:auto}code{background:#f4f4f4}";

/// Text escaped for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG document made fit to inline: the namespace attribute (a URL, unneeded inside
/// HTML) and any XML declaration removed.
pub fn inline_svg(svg: &str) -> String {
    let s = svg.trim_start();
    let s = if s.starts_with("<?xml") { s.split_once("?>").map_or(s, |(_, rest)| rest) } else { s };
    s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn table(header: &[&str], rows: &[impl AsRef<[String]>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in header {
        out += &format!("<th>{}</th>", esc(h));
    }
    out += "</tr>\n";
    for r in rows {
        out += "<tr>";
        for c in r.as_ref() {
            let class = if c.contains("ESTIMATED") { " class=\"est\"" } else { "" };
            out += &format!("<td{class}>{}</td>", esc(c));
        }
        out += "</tr>\n";
    }
    out + "</table>\n"
}

/// Markdown's `**bold**` and `` `code` `` in a sentence, as HTML (the rest escaped).
fn inline_md(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split("**").enumerate() {
        out += &if i % 2 == 1 { format!("<strong>{part}</strong>") } else { part.to_string() };
    }
    let mut res = String::new();
    for (i, part) in out.split('`').enumerate() {
        res += &if i % 2 == 1 { format!("<code>{part}</code>") } else { part.to_string() };
    }
    res
}

fn comparison(b: &BaselineOutcome) -> String {
    let mut out = String::from("<h3>Against the baseline</h3>\n");
    if let BaselineOutcome::Compared { comparison: c, .. } = b {
        // A metric missing on a side is NaN: shown as "-", not "NaN".
        let num = |v: f64| if v.is_finite() { format!("{v:.4e}") } else { "-".into() };
        let per = |v: f64| if v.is_finite() { pct(v) } else { "-".into() };
        let rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.resource.to_string(),
                    r.metric.clone(),
                    format!("{} -> {}", num(r.baseline_mean), num(r.candidate_mean)),
                    per(r.reduction),
                    format!("[{}, {}]", per(r.ci95[0]), per(r.ci95[1])),
                    r.verdict.to_string(),
                ]
            })
            .collect();
        let header = ["resource", "metric", "baseline -> candidate (means)", "reduction", "95% interval", "verdict"];
        if !rows.is_empty() {
            out += &table(&header, &rows);
        }
        out += &format!("<p>{}</p>\n", esc(&super::compare::scope_line(c)));
        for w in &c.warnings {
            out += &format!("<p class=\"missing\">warning: {}</p>\n", esc(w));
        }
    }
    out + &format!("<p>{}</p>\n", inline_md(&verdict_words(b)))
}

/// One result's section: summary table, plots (or what is missing), comparison.
pub fn section(w: &WorkloadReport, plots: &[Plot]) -> String {
    let mut out = format!("<section id=\"{}\">\n<h2>{}</h2>\n", esc(&w.name), esc(&w.name));
    out += &format!("<p>{}</p>\n<p>From <code>{}</code>.</p>\n", esc(&headline(w)), esc(&w.source));
    out += &table(&SUMMARY_HEADER, &summary_rows(w));
    for p in plots {
        out += &match &p.svg {
            Ok(svg) => format!(
                "<figure data-kind=\"{}\">\n{}\n<figcaption>{}</figcaption></figure>\n",
                p.kind,
                inline_svg(svg),
                esc(&p.title)
            ),
            Err(why) => format!(
                "<p class=\"missing\" data-kind=\"{}\">{} not drawn: {}.</p>\n",
                p.kind,
                esc(&p.title),
                esc(why)
            ),
        };
    }
    if let Some(b) = &w.baseline {
        out += &comparison(b);
    }
    out + "</section>\n"
}

// The page is written in pieces, one result at a time ([`super::stream`]): `head`, each
// result's `section`, the appendix (`appendix_head`, per list `list_head`, its `item`s,
// `list_end`), then `END`.

/// The page up to the first result: title, style, and the list of the results' names.
pub fn head<'a>(results: usize, names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>effbench report</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>effbench report</h1>\n<p>{results} result(s).</p>\n<ul>\n"
    );
    for n in names {
        out += &format!("<li><a href=\"#{}\">{}</a></li>\n", esc(n), esc(n));
    }
    out + "</ul>\n"
}

pub const APPENDIX_HEAD: &str = "<h2>Appendix</h2>\n";

/// An appendix list's heading.
pub fn list_head(heading: &str) -> String {
    format!("<h3>{}</h3>\n<ul>\n", esc(heading))
}

/// One line of an appendix list (Markdown's bold and code as HTML).
pub fn item(row: &str) -> String {
    format!("<li>{}</li>\n", inline_md(row))
}

pub const LIST_END: &str = "</ul>\n";

pub const END: &str = "</body>\n</html>\n";
