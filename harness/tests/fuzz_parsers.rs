//! Mutation fuzzing of the parsers that read outside input: result files, recipes, runner
//! TOML, Runner Protocol replies, PTDaemon replies and log lines, and the IDX reader.
//!
//! This is **not coverage-guided**: each target mutates a seed corpus (real files from the
//! repository and `tests/fuzz_corpus/`, whose PTDaemon strings come from recorded real
//! sessions) with a seeded RNG (bit flips, byte and chunk insertions, deletions, splices of
//! two seeds, interesting numbers) and feeds every input to the parser, for
//! `EFFBENCH_FUZZ_SECS` seconds per target (default 2, what CI runs). The property is that no
//! parser panics or allocates without bound on any input; an input that panics is written to
//! `target/fuzz-failures/<target>-<n>` and named in the failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod util;

fn budget() -> Duration {
    let secs = std::env::var("EFFBENCH_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs.clamp(0.1, 86_400.0))
}

/// SplitMix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e308",
    b"1e-320",
    b"18446744073709551615",
    b"4294967296",
    b"\"\"",
    b"null",
    b"[]",
    b"{}",
    b",",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff\xfe",
    b"\"schema\"",
    b"Watts",
    b"Time",
    b"Last",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if !v.is_empty() => {
                let end = (at + rng.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(256)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            4 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(at..at, s.iter().copied());
            }
            _ if v.len() > 1 => v.truncate(rng.below(v.len())),
            _ => {}
        }
    }
    v
}

/// Runs `target` on mutated inputs for the budget; returns the number of executions.
fn fuzz(name: &str, corpus: Vec<Vec<u8>>, seed: u64, target: impl Fn(&[u8])) -> u64 {
    assert!(!corpus.is_empty(), "{name}: empty corpus");
    for input in &corpus {
        target(input); // the seeds themselves first
    }
    let mut rng = Rng(seed);
    let (deadline, mut n) = (Instant::now() + budget(), 0u64);
    while Instant::now() < deadline {
        let input = mutate(&mut rng, &corpus);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input))).is_err() {
            let dir = util::repo().join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{n}"));
            std::fs::write(&path, &input).unwrap();
            panic!("{name}: the parser panicked on the input saved in {}", path.display());
        }
        n += 1;
    }
    eprintln!("fuzz {name}: {n} executions in {:?}", budget());
    n
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let root = util::repo().join(dir);
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn lines(file: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read(util::repo().join("harness/tests/fuzz_corpus").join(file)).unwrap();
    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn fuzz_result_parser() {
    let corpus = files("baselines", ".json");
    fuzz("result", corpus, 1, |b| {
        let _ = effbench::result::RunResult::from_json(&text(b), Path::new("fuzz.json"));
    });
}

#[test]
fn fuzz_recipe_parser() {
    let corpus = files("models/recipes", ".toml");
    fuzz("recipe", corpus, 2, |b| {
        let _ = effbench_models::recipe::Recipe::parse(&text(b), Path::new("fuzz.toml"));
    });
}

#[test]
fn fuzz_runner_toml_parser() {
    let corpus = vec![
        std::fs::read(util::repo().join("runners/template/runner.toml")).unwrap(),
        std::fs::read(util::repo().join("runners/reference/runner.toml")).unwrap(),
    ];
    fuzz("runner-toml", corpus, 3, |b| {
        let _ = effbench::backend::external::config::RunnerConfig::parse(&text(b), Path::new("runner.toml"));
    });
}

#[test]
fn fuzz_runner_protocol_replies() {
    use effbench::backend::external::proto::*;
    fuzz("protocol", lines("protocol.txt"), 4, |b| {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) else { return };
        let _ = serde_json::from_value::<ReplyHead>(v.clone());
        let _ = serde_json::from_value::<HelloReply>(v.clone());
        let _ = serde_json::from_value::<LoadReply>(v.clone());
        let _ = serde_json::from_value::<MarkReply>(v.clone());
        let _ = serde_json::from_value::<IssueReply>(v.clone());
        let _ = serde_json::from_value::<StatsReply>(v);
    });
}

#[test]
fn fuzz_ptdaemon_replies_and_log_lines() {
    use effbench::sensor::ptd::{log, proto};
    fuzz("ptd", lines("ptd.txt"), 5, |b| {
        let t = text(b);
        if let Ok(log::LogLine::Sample(s)) = log::parse_log_line(&t) {
            assert!(s.watts.is_finite(), "a sample's watts must be finite: {t:?}");
            let _ = (s.seconds(), s.max_volts_amps());
        }
        if let Ok(n) = log::parse_rl_header(&t) {
            assert!(n <= log::MAX_RL_SAMPLES, "{t:?}");
        }
        let _ = proto::parse_watts(&t);
        if let Ok(u) = proto::parse_uncertainty(&t) {
            let _ = (u.avg_pct(), u.max_pct());
        }
        let _ = (proto::parse_ranges(&t), proto::parse_go_period_ms(&t), proto::parse_meter_url(&t));
        proto::check_mark(&proto::make_mark(&t)).unwrap();
    });
}

#[test]
fn fuzz_idx_reader() {
    use std::io::Read;
    // The shipped subset's files, decompressed, and cut to their first images so a mutated
    // header is what the reader sees.
    let dir: PathBuf = util::repo().join("models/data/fashion-mnist-subset");
    let mut corpus = Vec::new();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dir.join(f)).unwrap()).read_to_end(&mut raw).unwrap();
        raw.truncate(16 + 784 * 3);
        corpus.push(raw);
    }
    fuzz("idx", corpus, 6, |b| {
        if let Ok((dims, payload)) = effbench_models::data::idx::parse(Path::new("fuzz.idx"), b) {
            assert_eq!(dims.iter().product::<usize>(), payload.len(), "dims and payload disagree");
        }
    });
}

#[test]
#[should_panic(expected = "selftest: the parser panicked on the input saved in")]
fn the_fuzzer_reports_a_parser_that_panics() {
    // Shows the harness can fail: a "parser" that panics on any input longer than its seed.
    fuzz("selftest", vec![b"abc".to_vec()], 7, |b| assert!(b.len() <= 3, "too long"));
}
