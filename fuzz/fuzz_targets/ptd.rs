//! PTDaemon replies and log lines: no parser panics, and what they accept is sane (the same
//! properties as `harness/tests/fuzz_parsers.rs`).
#![no_main]
use effbench::sensor::ptd::{log, proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|b: &[u8]| {
    let t = String::from_utf8_lossy(b);
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
