//! The multi-process stress run (issue 5, item 3) at CI size: 8 worker processes, 8,000
//! acquisitions, a 1.5 s lifetime, holders SIGKILLed inside their critical sections and
//! respawned, waiters SIGSTOPped for up to twice the lifetime. The coordinator checks the
//! log; this test runs it with a time limit and asserts the figures of its JSON report.

use crate::support::BIN;
use std::process::Command;
use std::time::{Duration, Instant};

/// The number after `"key": ` in `json` (the first occurrence at or after `from`).
fn num(json: &str, key: &str, from: &str) -> f64 {
    let start = json.find(from).unwrap_or(0);
    let pat = format!("\"{key}\": ");
    let at = json[start..]
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + start
        + pat.len();
    let end = json[at..]
        .find([',', '\n', ' ', '}'])
        .map_or(json.len(), |e| at + e);
    json[at..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key}: {:?}", &json[at..end]))
}

#[test]
fn stress_kills_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let work = dir.path().join("run");
    let lifetime_ms = 1500.0;
    let margin_ms = 1000.0;
    let mut child = Command::new(BIN)
        .arg("coordinator")
        .arg("--dir")
        .arg(&work)
        .arg("--json")
        .arg(&json_path)
        .args(["--workers", "8"])
        .args(["--acquisitions", "8000"])
        .args(["--lifetime-ms", "1500"])
        .args(["--margin-ms", "1000"])
        .args(["--kill-chance", "0.03"])
        .args(["--stop-every-ms", "100"])
        .args(["--stop-max-ms", "3000"])
        .args(["--min-kills", "50"])
        .args(["--min-stops", "10"])
        .args(["--max-seconds", "120"])
        .spawn()
        .expect("start the coordinator");
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(150) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the stress run did not finish in 150 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let json = std::fs::read_to_string(&json_path).expect("the JSON report");
    println!("{json}");
    assert!(
        status.success(),
        "the coordinator reported a failure ({status}):\n{json}"
    );
    assert!(json.contains("\"ok\": true"), "{json}");
    assert!(num(&json, "acquisitions", "{") >= 8000.0, "{json}");
    assert_eq!(num(&json, "overlaps", "{"), 0.0, "{json}");
    assert_eq!(num(&json, "lost_updates", "{"), 0.0, "{json}");
    assert_eq!(num(&json, "unrecovered", "{"), 0.0, "{json}");
    assert!(num(&json, "kills_in_section", "{") >= 50.0, "{json}");
    assert!(num(&json, "stops", "{") >= 10.0, "{json}");
    assert_eq!(
        num(&json, "counter", "{"),
        num(&json, "completed_sections", "{") + num(&json, "killed_after_counter_write", "{"),
        "{json}"
    );
    let max_recovery = num(&json, "max", "\"recovery_ms\"");
    assert!(max_recovery < lifetime_ms + margin_ms, "{json}");
    assert!(json.contains("\"claim_files_left\": []"), "{json}");
    assert!(json.contains("\"violations\": []"), "{json}");
}
