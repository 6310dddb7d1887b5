//! The deployment artefacts are checked, not just written: every Kubernetes manifest
//! validates against a pinned schema version (`kubernetes-validate`, from PyPI, works
//! offline) in strict mode, and every systemd unit passes `systemd-analyze verify`
//! against the binaries this build made. Without the tools the test says so and
//! passes, unless `X0_REQUIRE_DEPLOY_CHECKS=1` (CI installs them).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version the manifests are written for.
const KUBERNETES: &str = "1.30.0";

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.{ext} in {}", dir.display());
    v
}

fn have(tool: &str, test: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert_ne!(std::env::var("X0_REQUIRE_DEPLOY_CHECKS").as_deref(), Ok("1"), "{test}: {tool} is missing");
    println!("SKIPPED {test}: {tool} is not installed");
    false
}

#[test]
fn kubernetes_manifests_validate_against_a_pinned_schema() {
    if !have("kubernetes-validate", "kubernetes_manifests_validate_against_a_pinned_schema") {
        return;
    }
    for f in files("deploy/kubernetes", "yaml") {
        let out = Command::new("kubernetes-validate").args(["-k", KUBERNETES, "--strict"]).arg(&f).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("ERROR"), "{}: {text}", f.display());
        assert!(text.contains("passed"), "{}: {text}", f.display());
    }
}

#[test]
fn systemd_units_verify_against_the_built_binaries() {
    if !have("systemd-analyze", "systemd_units_verify_against_the_built_binaries") {
        return;
    }
    // The units name /usr/local/bin; here they run what this build made.
    let bin = Path::new(env!("CARGO_BIN_EXE_x0tta6bl4")).parent().unwrap().to_path_buf();
    assert!(bin.join("x0-agent").is_file(), "x0-agent is built beside x0tta6bl4");
    let dir = tempfile::tempdir().unwrap();
    for f in files("deploy/systemd", "service") {
        let unit = std::fs::read_to_string(&f).unwrap().replace("/usr/local/bin/", &format!("{}/", bin.display()));
        let copy = dir.path().join(f.file_name().unwrap());
        std::fs::write(&copy, unit).unwrap();
        let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.trim().is_empty(), "{}: {text}", f.display());
    }
}

/// The manifests' `x0.toml` is one the job and the agents accept: every key known and
/// well typed; what remains are the files that exist only on a deployed node.
#[test]
fn the_manifests_configuration_loads_for_job_and_agent() {
    let yaml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/config.yaml")).unwrap();
    let start = yaml.find("  x0.toml: |\n").expect("config.yaml holds x0.toml") + "  x0.toml: |\n".len();
    let toml: String = yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x0.toml");
    std::fs::write(&f, &toml).unwrap();
    let only_missing_files = |problems: Vec<String>| {
        for p in problems {
            assert!(p.contains("does not exist") || p.contains("No such file"), "{p}\nin\n{toml}");
        }
    };
    match x0_pipeline::Config::load(Some(&f), std::iter::empty()) {
        Ok(c) => assert_eq!(c.kafka.spiffe.dir, "/run/spiffe"),
        Err(e) => only_missing_files(e.0),
    }
    match x0_agent::AgentConfig::load(Some(&f), std::iter::empty()) {
        Ok(c) => assert_eq!(c.kafka.spiffe.dir, "/run/spiffe"),
        Err(e) => only_missing_files(e.0),
    }
    assert!(toml.contains("fleet_secret") && toml.contains("node_key") && toml.contains("[kafka.spiffe]"), "{toml}");
}

/// The job and the lean agent built together report the same contracts fingerprint in
/// `--version` (what `lab run` checks an `x0-agent` by before running it), and it is
/// the fingerprint of these sources.
#[test]
fn the_job_and_the_lean_agent_report_the_same_contracts() {
    let job = Path::new(env!("CARGO_BIN_EXE_x0tta6bl4"));
    let agent = job.with_file_name("x0-agent");
    assert!(agent.is_file(), "x0-agent is built beside x0tta6bl4");
    let version = |exe: &Path| {
        let out = Command::new(exe).arg("--version").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (job, agent) = (version(job), version(&agent));
    let contracts = x0_schema::CONTRACT_VERSION;
    assert!(contracts.contains("(contracts ") && contracts.len() > 20, "{contracts}");
    assert_eq!(job, format!("x0tta6bl4 {contracts}"));
    assert_eq!(agent, format!("x0-agent {contracts}"));
}
