use super::*;

/// A "runner" that is a shell script: it reads `n` requests, then prints `replies`.
fn sh(n: usize, replies: &str) -> (RunnerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("for i in $(seq {n}); do read line; done; printf '{replies}'; sleep 5");
    let argv = vec!["sh".to_string(), "-c".to_string(), script];
    let p = RunnerProcess::spawn("sh", &argv, &Default::default(), dir.path(), &dir.path().join("log")).unwrap();
    (p, dir)
}

const T: Duration = Duration::from_secs(5);

#[test]
fn replies_may_come_out_of_order() {
    let (mut p, _d) = sh(2, r#"{"v":1,"re":2,"ok":true,"x":2}\n{"v":1,"re":1,"ok":true,"x":1}\n"#);
    let a = p.send(&Op::Stats).unwrap();
    let b = p.send(&Op::Flush).unwrap();
    assert_eq!(p.wait(a, T).unwrap()["x"], 1);
    assert_eq!(p.wait(b, T).unwrap()["x"], 2);
}

#[test]
fn refusal_quotes_code_and_message() {
    let (mut p, _d) = sh(1, r#"{"v":1,"re":1,"ok":false,"error":{"code":"OOM","msg":"no device memory"}}\n"#);
    let e = p.call(&Op::Flush, T).unwrap_err().to_string();
    assert!(e.contains("refused `flush`") && e.contains("[OOM] no device memory"), "{e}");
}

#[test]
fn other_version_and_unknown_ids_are_protocol_errors() {
    let (mut p, _d) = sh(1, r#"{"v":2,"re":1,"ok":true}\n"#);
    let e = p.call(&Op::Flush, T).unwrap_err().to_string();
    assert!(e.contains("protocol version 2"), "{e}");
    let (mut p, _d) = sh(1, r#"{"v":1,"re":7,"ok":true}\n"#);
    let e = p.call(&Op::Flush, T).unwrap_err().to_string();
    assert!(e.contains("id 7 which is not an outstanding request"), "{e}");
    let (mut p, _d) = sh(1, r#"{"v":1,"ok":true}\n"#);
    let e = p.call(&Op::Flush, T).unwrap_err().to_string();
    assert!(e.contains("malformed reply"), "{e}");
}

#[test]
fn runner_exit_is_reported_even_when_a_grandchild_holds_stdout() {
    let dir = tempfile::tempdir().unwrap();
    // The runner leaves a child holding its stdout, says why on stderr, and exits 3.
    let script = "sleep 30 & echo 'no device' >&2; exit 3";
    let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let mut p = RunnerProcess::spawn("r2", &argv, &Default::default(), dir.path(), &dir.path().join("log")).unwrap();
    let t = Instant::now();
    let e = p.call(&Op::Stats, Duration::from_secs(20)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "waited for the watchdog: {:?}", t.elapsed());
    assert!(e.what.contains("the runner exited with status 3"), "{}", e.what);
    assert!(e.stderr_tail.contains("no device"), "{}", e.stderr_tail);
}

#[test]
fn the_error_names_the_last_messages_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = "read line; echo 'driver says hi' >&2; echo '{\"v\":1,\"re\":1,\"ok\":true}'; read line; exit 7";
    let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let mut p = RunnerProcess::spawn("r1", &argv, &Default::default(), dir.path(), &dir.path().join("log")).unwrap();
    p.call(&Op::Stats, T).unwrap();
    let e = p.call(&Op::Unload, T).unwrap_err();
    assert_eq!(e.runner, "r1");
    assert!(e.what.contains("closed stdout") && e.what.contains("exit status: 7"), "{}", e.what);
    assert!(e.last_sent.contains(r#""op":"unload""#), "{}", e.last_sent);
    assert!(e.last_received.contains(r#""re":1"#), "{}", e.last_received);
    assert!(e.stderr_tail.contains("driver says hi"), "{}", e.stderr_tail);
    // The log file has the runner's stderr too.
    assert!(std::fs::read_to_string(dir.path().join("log")).unwrap().contains("driver says hi"));
}
