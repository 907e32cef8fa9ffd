use super::*;

const T: Duration = Duration::from_secs(5);

fn opts(domain: &str, timeout: Duration, unit: CommandUnit, mode: CommandMode) -> CommandOptions {
    CommandOptions { unit, mode, ..CommandOptions::new(domain, timeout) }
}

#[test]
fn command_value_units() {
    let p = |s: &str| parse_value(s, CommandUnit::Auto).unwrap();
    assert_eq!(p("12.5"), CommandValue::Power(Watts(12.5)));
    assert_eq!(p(" 12.5 W\n"), CommandValue::Power(Watts(12.5)));
    assert_eq!(p("12500 mW"), CommandValue::Power(Watts(12.5)));
    assert_eq!(p("12500000uW"), CommandValue::Power(Watts(12.5)));
    assert_eq!(p("0.5 kW"), CommandValue::Power(Watts(500.0)));
    assert_eq!(p("3600 J"), CommandValue::Energy(Joules(3600.0)));
    assert_eq!(p("2500 mJ"), CommandValue::Energy(Joules(2.5)));
    assert_eq!(p("1 Wh"), CommandValue::Energy(Joules(3600.0)));
    assert_eq!(parse_value("2500", CommandUnit::Millijoules).unwrap(), CommandValue::Energy(Joules(2.5)));
    assert_eq!(parse_value("2500", CommandUnit::Milliwatts).unwrap(), CommandValue::Power(Watts(2.5)));
    assert_eq!(parse_value("3 W", CommandUnit::Milliwatts).unwrap(), CommandValue::Power(Watts(3.0)));
    assert!(parse_value("5 J", CommandUnit::Watts).unwrap_err().contains("a power (--power-command-unit is W)"));
    for bad in ["", "N/A", "abc W", "-3 W", "nan", "inf", "12.5 V"] {
        assert!(parse_value(bad, CommandUnit::Auto).is_err(), "{bad}");
    }
    assert_eq!("uJ".parse::<CommandUnit>().unwrap(), CommandUnit::Microjoules);
    assert!("kWh".parse::<CommandUnit>().unwrap_err().contains("auto, W, mW, J, mJ, uJ"));
}

#[test]
fn command_prints_watts() {
    let mut s = CommandSensor::new("echo 'vendor-smi v1'; echo '12500 mW'", "npu:0", T).unwrap();
    assert_eq!(s.read().unwrap(), Reading::Power(Watts(12.5)));
    let info = s.info();
    assert_eq!((info.id.as_str(), info.kind.as_str(), info.domain.as_str()), ("command:npu:0", "command", "npu:0"));
    assert_eq!(info.provenance, Provenance::VendorReported);
    assert_eq!(info.detail["quantity"], "power");
}

#[test]
fn command_prints_growing_joules_as_a_counter() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("n");
    // Each run prints 10 J more than the last: a cumulative counter.
    let cmd = format!("n=$(cat {0} 2>/dev/null || echo 0); n=$((n+10)); echo $n > {0}; echo \"$n J\"", f.display());
    let o = opts("system", T, CommandUnit::Auto, CommandMode::OneShot { interval: Duration::from_millis(20) });
    let mut s = CommandSensor::with_options(&cmd, o).unwrap();
    assert_eq!(s.read().unwrap(), Reading::Counter { raw: 10_000_000, wrap_at: 0, joules_per_unit: 1e-6 });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match s.read().unwrap() {
            Reading::Counter { raw, .. } if raw > 10_000_000 => {
                assert_eq!(raw % 10_000_000, 0);
                break;
            }
            r => assert!(Instant::now() < deadline, "no newer value than {r:?} after 5 s"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.info().detail["quantity"], "cumulative energy");
}

#[test]
fn command_garbage_is_quoted() {
    let e = CommandSensor::new("echo 'power: N/A'", "npu:0", T).err().unwrap();
    assert!(matches!(e, SensorError::Parse { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("\"power: N/A\"") && m.contains("echo 'power: N/A'"), "{m}");
    let e = CommandSensor::new("true", "npu:0", T).err().unwrap().to_string();
    assert!(e.contains("cannot parse \"\""), "{e}");
}

#[test]
fn command_nonzero_exit_quotes_stderr() {
    let e = CommandSensor::new("echo 'device 0 not found' >&2; exit 3", "npu:0", T).err().unwrap().to_string();
    assert!(e.contains("exit status: 3") && e.contains("\"device 0 not found\""), "{e}");
    let e = CommandSensor::new("head -c 5000 /dev/zero | tr '\\0' x; exit 1", "npu:0", T).err().unwrap().to_string();
    assert!(e.contains("stdout: \"xxx") && e.contains('…') && e.len() < 500, "{e}");
}

#[test]
fn command_timeout_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    // The inner shell is a grandchild of effbench: only a process-group kill stops it.
    let cmd = format!("sh -c 'sleep 1; touch {}'; true", marker.display());
    let t = Instant::now();
    let e = CommandSensor::new(&cmd, "npu:0", Duration::from_millis(200)).err().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
    assert!(matches!(e, SensorError::Transient { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains(&cmd) && m.contains("within 0.200 s") && m.contains("killed"), "{m}");
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(t.elapsed()));
    assert!(!marker.exists(), "the timed-out command kept running");
}

#[test]
fn command_failure_after_start_reaches_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ran");
    // First run prints a value; later runs print garbage.
    let cmd = format!("if [ -e {0} ]; then echo oops; else touch {0}; echo 5; fi", f.display());
    let o = opts("npu:0", T, CommandUnit::Auto, CommandMode::OneShot { interval: Duration::from_millis(20) });
    let mut s = CommandSensor::with_options(&cmd, o).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let e = loop {
        match s.read() {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(r) => panic!("still {r:?} after 5 s"),
        }
    };
    assert!(e.to_string().contains("\"oops\""), "{e}");
}

#[test]
fn command_stream_mode_reads_lines() {
    let cmd = "echo 1 W; sleep 0.1; echo 2 W; sleep 0.1; echo 3 W; sleep 5";
    let o = opts("npu:1", T, CommandUnit::Auto, CommandMode::Stream);
    let mut s = CommandSensor::with_options(cmd, o).unwrap();
    assert_eq!(s.read().unwrap(), Reading::Power(Watts(1.0)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.read().unwrap() != Reading::Power(Watts(3.0)) {
        assert!(Instant::now() < deadline, "never saw the third line");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    drop(s);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn command_stream_exit_and_silence_are_errors() {
    let o = opts("npu:0", T, CommandUnit::Auto, CommandMode::Stream);
    let e = CommandSensor::with_options("echo broken >&2; exit 1", o).err().unwrap().to_string();
    assert!(e.contains("stopped printing") && e.contains("\"broken\""), "{e}");
    let o = opts("npu:0", Duration::from_millis(200), CommandUnit::Auto, CommandMode::Stream);
    let t = Instant::now();
    let e = CommandSensor::with_options("sleep 5", o).err().unwrap().to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    assert!(e.contains("printed no value within 0.200 s"), "{e}");
}

#[test]
fn power_command_that_floods_stdout_is_killed_and_quoted_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    // `yes` prints ~1 GB/s; the shell would go on to touch the marker if only `yes` died.
    let cmd = format!("yes; touch {}", marker.display());
    let t = Instant::now();
    let e = CommandSensor::new(&cmd, "npu:0", T).err().unwrap().to_string();
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(
        e.contains(&format!(
            "power command `{cmd}` printed more than 64 KiB in one run and was killed (its output begins \"y\\ny\\ny"
        )),
        "{e}"
    );
    assert!(e.len() < 700, "the message quotes too much: {} bytes", e.len());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "the flooding command's group kept running");
}

#[test]
fn power_command_line_over_4_kib_is_refused_and_quoted_briefly() {
    // One-shot: a single long line (under the 64 KiB run limit).
    let e = CommandSensor::new("head -c 10000 /dev/zero | tr '\\0' 7", "npu:0", T).err().unwrap().to_string();
    assert!(e.contains("one value on a line of at most 4096 bytes"), "{e}");
    assert!(e.len() < 600, "the message quotes too much: {} bytes", e.len());
    // Stream: the line is cut at 4 KiB and the command is killed, not buffered.
    let o = opts("npu:0", T, CommandUnit::Auto, CommandMode::Stream);
    let t = Instant::now();
    let e = CommandSensor::with_options("cat /dev/zero | tr '\\0' 7", o).err().unwrap().to_string();
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(e.contains("printed a line longer than 4096 bytes (it begins \"777"), "{e}");
    assert!(e.len() < 600, "the message quotes too much: {} bytes", e.len());
}

#[test]
fn power_command_failure_quotes_the_end_of_a_long_stderr() {
    let cmd = "head -c 100000 /dev/zero | tr '\\0' n >&2; echo ' device 0 not found' >&2; exit 3";
    let e = CommandSensor::new(cmd, "npu:0", T).err().unwrap().to_string();
    assert!(e.contains("exit status: 3") && e.contains("stderr: …\"nnn") && e.ends_with("device 0 not found\""), "{e}");
    assert!(e.len() < 600, "the message quotes too much: {} bytes", e.len());
}
