//! Runner Protocol replies: one JSON line decoded as every reply type never panics.
#![no_main]
use effbench::backend::external::proto::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|b: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) else { return };
    let _ = serde_json::from_value::<ReplyHead>(v.clone());
    let _ = serde_json::from_value::<HelloReply>(v.clone());
    let _ = serde_json::from_value::<LoadReply>(v.clone());
    let _ = serde_json::from_value::<MarkReply>(v.clone());
    let _ = serde_json::from_value::<IssueReply>(v.clone());
    let _ = serde_json::from_value::<StatsReply>(v);
});
