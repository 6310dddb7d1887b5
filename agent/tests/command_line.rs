//! The `x0-agent` binary as an operator meets it: a bad configuration or a missing
//! file is refused at once with every reason, before anything touches the network.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_x0-agent"));
    c.env_remove("X0_CONFIG").env("RUST_LOG", "off");
    c
}

#[test]
fn every_configuration_problem_is_reported_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("x0.toml");
    std::fs::write(&config, "[agent]\nprobe_intervall = \"1s\"\nencoding = \"xml\"\n").unwrap();
    let out = agent()
        .args(["--config", config.to_str().unwrap(), "--network", "/nonexistent.json"])
        .env("X0__AGENT__NOPE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["3 problem(s)", "agent.probe_intervall", "X0__AGENT__NOPE", "agent:"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

#[test]
fn a_missing_network_file_is_named() {
    let out = agent().args(["--network", "/nonexistent/n1.json"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/n1.json"), "{err}");
}

#[test]
fn an_unknown_encoding_is_refused_with_the_choices() {
    let out = agent().args(["--network", "n.json", "--encoding", "xml"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("json") && err.contains("arrow"), "{err}");
}
