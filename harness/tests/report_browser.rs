//! `effbench report`'s index.html seen in a real browser (issue 12, item 5): the real binary
//! writes a report from the fixture results (tests/fixtures/report/, with a baseline, so the
//! forest plot exists) and from a copy of a training result without evaluations or trace;
//! headless Chromium loads it from disk, and over the DevTools protocol the test checks that
//! every plot drew (each SVG in the DOM holds its marks, with non-zero boxes), that what is
//! missing is said instead of drawn, that the page loaded nothing from anywhere, and that the
//! screenshot is not blank where each plot is.
//!
//! Needs Debian's `chromium` (`apt-get install -y --no-install-recommends chromium`; `.ci/run`
//! installs it). Without it the test is skipped with a message, except under CI (`CI` set),
//! where it fails. `EFFBENCH_SCREENSHOT=FILE` keeps the screenshot for a person to look at.

#[path = "browser/cdp.rs"]
mod cdp;
mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use util::*;

/// The whole browser session (start, load, query, screenshot) must fit in this.
const BUDGET: Duration = Duration::from_secs(40);
/// The page width the screenshot is taken at, in CSS pixels (scale 1).
const WIDTH: u64 = 1100;

/// Writes the report: the fixture results with their baseline, plus a training result whose
/// repeats lack `evaluations` and which has no trace file.
fn write_report(tmp: &Path) -> std::path::PathBuf {
    let fixtures = repo().join("harness/tests/fixtures/report");
    let bare = tmp.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let copy = bare.join("digits-mlp-train.json");
    std::fs::copy(fixtures.join("results/digits-mlp-train.json"), &copy).unwrap();
    // A run that stopped before its first evaluation: its repeats are invalid (a valid
    // training repeat must record evaluations) and it left no trace.
    edit_json(&copy, |v| {
        for r in v["repeats"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("evaluations");
            r["valid"] = json!(false);
            r["invalid_reason"] = json!("the run stopped before its first evaluation");
        }
    });
    let out = tmp.join("report");
    let (results, baselines) = (fixtures.join("results"), fixtures.join("baselines"));
    let o = output_within(
        effbench().args(["report", "--out"]).arg(&out).arg(&results).arg(&bare).arg("--baseline").arg(&baselines),
        60,
        "effbench report did not finish in 60 s",
    );
    assert!(o.status.success(), "{}", both(&o));
    out.join("index.html")
}

/// What the page holds, read from the DOM after layout: per section its figures (kind, box
/// in page coordinates, marks with a non-empty bounding box, text) and its "not drawn" notes.
const QUERY: &str = r#"(() => {
  const marks = (svg, sel) => [...svg.querySelectorAll(sel)]
    .filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length;
  return {
    svgs: document.querySelectorAll('svg').length,
    tableRows: [...document.querySelectorAll('table')].map(t => t.rows.length),
    nan: document.body.innerText.includes('NaN'),
    loaded: performance.getEntriesByType('resource').map(e => e.name),
    sections: [...document.querySelectorAll('section')].map(s => ({
      id: s.id,
      missing: [...s.querySelectorAll('.missing')].map(p => [p.dataset.kind || '', p.textContent]),
      figures: [...s.querySelectorAll('figure')].map(f => {
        const svg = f.querySelector('svg');
        const r = svg.getBoundingClientRect();
        return {
          kind: f.dataset.kind || '',
          x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
          polylines: marks(svg, 'polyline'), circles: marks(svg, 'circle'),
          polygons: marks(svg, 'polygon'), rects: marks(svg, 'rect'),
          text: [...svg.querySelectorAll('text')].map(t => t.textContent.trim()).join(' | '),
        };
      }),
    })),
  };
})()"#;

/// Loads `html` in Chromium; returns the DOM summary and the full-page screenshot (PNG).
fn look(chromium: &Path, html: &Path) -> (Value, Vec<u8>) {
    let url = format!("file://{}", html.display());
    let mut b = cdp::Browser::launch(chromium, &url, BUDGET);
    let s = b.page_session();
    let metrics = |h: u64| json!({ "width": WIDTH, "height": h, "deviceScaleFactor": 1, "mobile": false });
    b.call(Some(&s), "Emulation.setDeviceMetricsOverride", metrics(800));
    b.wait_until(&s, &format!("location.href === {url:?} && document.readyState === 'complete'"));
    let height = b.eval(&s, "document.documentElement.scrollHeight").as_u64().unwrap();
    assert!((200..30_000).contains(&height), "page height {height}");
    b.call(Some(&s), "Emulation.setDeviceMetricsOverride", metrics(height));
    let dom = b.eval(&s, QUERY);
    let shot = b.call(Some(&s), "Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    (dom, png)
}

/// An RGB image decoded from PNG bytes by the `png` crate.
struct Image {
    w: usize,
    h: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode(png_bytes: &[u8]) -> Image {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "a grey screenshot ({:?})", info.color_type);
    let rgb = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    Image { w: info.width as usize, h: info.height as usize, rgb }
}

/// In the region `f` of the image: the share of pixels that are not white, and how many
/// pixels have a clear hue (a coloured series, not grey).
fn ink(img: &Image, f: &Value) -> (f64, usize) {
    let at = |k: &str| f[k].as_f64().unwrap().max(0.0) as usize;
    let (x0, y0) = (at("x"), at("y"));
    let (x1, y1) = ((x0 + at("w")).min(img.w), (y0 + at("h")).min(img.h));
    let (mut dark, mut hue, mut all) = (0usize, 0usize, 0usize);
    for y in y0..y1 {
        for p in &img.rgb[y * img.w + x0..y * img.w + x1] {
            all += 1;
            let (max, min) = (*p.iter().max().unwrap(), *p.iter().min().unwrap());
            dark += usize::from(min < 200);
            hue += usize::from(max - min > 60);
        }
    }
    (dark as f64 / all.max(1) as f64, hue)
}

fn figure<'a>(section: &'a Value, kind: &str) -> &'a Value {
    let figs = section["figures"].as_array().unwrap();
    figs.iter().find(|f| f["kind"] == kind).unwrap_or_else(|| panic!("no {kind} figure in {section:#}"))
}

fn missing(section: &Value, kind: &str) -> String {
    let notes = section["missing"].as_array().unwrap();
    let note = notes.iter().find(|m| m[0] == kind).unwrap_or_else(|| panic!("no {kind} note in {section:#}"));
    note[1].as_str().unwrap().to_string()
}

/// The marks each kind of plot must hold, and text it must show (units on the axes).
fn check_marks(f: &Value, text: &[&str]) {
    let n = |k: &str| f[k].as_u64().unwrap();
    let t = f["text"].as_str().unwrap();
    match f["kind"].as_str().unwrap() {
        // 5 repeats' curves and the target line; each repeat's samples-to-target marked.
        "quality" => assert!(n("polylines") >= 6 && n("circles") + n("polygons") >= 5, "{f:#}"),
        "power" => assert!(n("polylines") >= 2, "{f:#}"),
        // A median and an interval per row.
        "energy" | "reduction" => assert!(n("circles") >= 1 && n("polylines") >= 1, "{f:#}"),
        k => panic!("unknown figure kind {k}"),
    }
    assert!(f["w"].as_f64().unwrap() > 300.0 && f["h"].as_f64().unwrap() > 100.0, "{f:#}");
    for want in text {
        assert!(t.contains(want), "{} lacks {want:?}: {t}", f["kind"]);
    }
}

#[test]
fn every_plot_draws_in_chromium_and_what_is_missing_is_said() {
    let Some(chromium) = cdp::find_chromium() else {
        tool_present("chromium", false, "apt-get install -y --no-install-recommends chromium");
        return;
    };
    let started = Instant::now();
    let tmp = tempdir("browser");
    let html = write_report(tmp.path());
    let (dom, png) = look(&chromium, &html);
    if let Some(keep) = std::env::var_os("EFFBENCH_SCREENSHOT") {
        std::fs::write(keep, &png).unwrap();
    }
    let img = decode(&png);
    assert_eq!(dom["loaded"], json!([]), "the report loaded something: it must be self-contained");
    // No empty table (an invalid candidate's comparison has no rows) and no "NaN" shown.
    let rows = dom["tableRows"].as_array().unwrap();
    assert!(rows.iter().all(|n| n.as_u64().unwrap() >= 2), "a table without rows: {rows:?}");
    assert_eq!(dom["nan"], json!(false), "the page shows NaN");
    let sections = dom["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 3, "{dom:#}");
    let (full, infer, bare) = (&sections[0], &sections[1], &sections[2]);

    // The full training result: all four plots, each with marks, units and ESTIMATED where the
    // figure holds an estimate (these fixtures' energy is a CPU estimate).
    check_marks(figure(full, "quality"), &["(samples)", "target 0.95"]);
    check_marks(figure(full, "power"), &["(s)", "(W)", "ESTIMATED", "idle"]);
    check_marks(figure(full, "energy"), &["(µJ)", "ESTIMATED"]);
    check_marks(figure(full, "reduction"), &["(%)", "target 50%", "ESTIMATED"]);
    check_marks(figure(infer, "energy"), &["(µJ)", "ESTIMATED"]);
    // Said, not drawn: no trace for the inference result; neither evaluations nor trace for
    // the bare copy, which therefore has no quality or power figure at all.
    assert!(missing(infer, "power").contains("no power trace"), "{infer:#}");
    assert!(missing(bare, "quality").contains("no evaluations recorded"), "{bare:#}");
    assert!(missing(bare, "power").contains("no power trace"), "{bare:#}");
    for f in bare["figures"].as_array().unwrap() {
        assert!(f["kind"] != "quality" && f["kind"] != "power", "{bare:#}");
    }
    // report.md says the same.
    let md = std::fs::read_to_string(html.with_file_name("report.md")).unwrap();
    assert!(md.contains("*quality against samples consumed not drawn: no evaluations recorded"), "{md}");
    let figures: Vec<&Value> = sections.iter().flat_map(|s| s["figures"].as_array().unwrap()).collect();
    assert_eq!(dom["svgs"].as_u64().unwrap() as usize, figures.len(), "an SVG outside a figure");

    // The screenshot: where each plot is, it is not blank (ink on a good part of it).
    assert!(img.w as u64 >= WIDTH && img.h > 1000, "screenshot {}x{}", img.w, img.h);
    for f in &figures {
        let (dark, hue) = ink(&img, f);
        assert!(dark > 0.03, "the {} plot is blank in the screenshot ({:.1}% ink)", f["kind"], 100.0 * dark);
        if f["kind"] == "quality" {
            assert!(hue > 500, "the quality plot's coloured curves are not in the screenshot ({hue} px)");
        }
    }
    eprintln!("browser check took {:.2} s", started.elapsed().as_secs_f64());
}
