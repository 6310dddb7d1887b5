//! What the agent's process tests share: a network namespace with two veth links, n1's
//! network file, the agent process, its results.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use x0_actuator::{BaselineRoute, Neighbour, NodeNetwork};
use x0_kafka::rdkafka::consumer::StreamConsumer;
use x0_kafka::rdkafka::Message;
use x0_schema::CommandResult;

pub fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return false;
    }
    assert_ne!(std::env::var("X0_REQUIRE_KERNEL_TESTS").as_deref(), Ok("1"), "{test}: needs root");
    println!("SKIPPED {test}: needs root (network namespaces, rtnetlink)");
    true
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The gateway of our primary route to n4 (10.79.0.4) in the namespace, if any.
pub fn route_to_n4(ns: &str) -> Option<String> {
    let out = ip(&["-n", ns, "route", "show", "10.79.0.4", "proto", "77", "metric", "100"]);
    out.split_whitespace().skip_while(|w| *w != "via").nth(1).map(str::to_string)
}

/// An agent process, killed when the test ends however it ends.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Netns(pub String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn network() -> NodeNetwork {
    let n = |node: &str, iface: &str, net: u8| Neighbour {
        node: node.into(),
        iface: iface.into(),
        local: Ipv4Addr::new(10, 78, net, 1),
        peer: Ipv4Addr::new(10, 78, net, 2),
    };
    NodeNetwork {
        node: "n1".into(),
        address: Ipv4Addr::new(10, 79, 0, 1),
        neighbours: vec![n("n2", "x0a", 1), n("n3", "x0c", 2)],
        destinations: [("n1", 1), ("n2", 2), ("n3", 3), ("n4", 4)]
            .into_iter()
            .map(|(d, i)| (d.to_string(), Ipv4Addr::new(10, 79, 0, i)))
            .collect(),
        baseline: [("n2", "n2"), ("n3", "n3"), ("n4", "n2")]
            .into_iter()
            .map(|(d, p)| (d.to_string(), BaselineRoute { primary: p.into(), backup: None }))
            .collect(),
        uturn: Default::default(),
    }
}

/// Starts `x0-agent` for n1 in `ns` (files in `dir`), with `extra` flags; its stderr
/// goes to `log` when given (else to the test's).
pub fn start_agent(ns: &str, dir: &Path, brokers: &str, extra: &[&str], log: Option<&Path>) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_x0-agent"))
        .args(["--node", "n1", "--netns", ns, "--brokers", brokers, "--no-ebpf"])
        .arg("--network")
        .arg(dir.join("n1.json"))
        .arg("--verify-key")
        .arg(dir.join("verifying.key"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .env_remove("X0_CONFIG")
        .stdin(Stdio::null())
        .stderr(log.map_or_else(Stdio::inherit, |p| std::fs::File::create(p).unwrap().into()))
        .spawn()
        .unwrap();
    Agent(child)
}

pub async fn result_of(results: &StreamConsumer, id: &str) -> CommandResult {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = results.recv().await.unwrap();
            let r = CommandResult::from_json(m.payload().unwrap_or_default()).unwrap();
            if r.command_id == id {
                return r;
            }
        }
    })
    .await
    .expect("the agent answers within 30 s")
}

/// n1 in a fresh namespace `<prefix>-<pid>` with its two links (their far ends
/// answer nothing), and a directory holding its network file and a key pair.
pub fn node(prefix: &str) -> (Netns, tempfile::TempDir, x0_schema::SigningKey) {
    let ns = Netns(format!("{prefix}-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    for (a, b, net) in [("x0a", "x0b", 1), ("x0c", "x0d", 2)] {
        ip(&["-n", &ns.0, "link", "add", a, "type", "veth", "peer", "name", b]);
        ip(&["-n", &ns.0, "addr", "add", &format!("10.78.{net}.1/24"), "dev", a]);
        ip(&["-n", &ns.0, "link", "set", a, "up"]);
        ip(&["-n", &ns.0, "link", "set", b, "up"]);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("n1.json"), network().to_json()).unwrap();
    let (signing, _) = x0_schema::generate_key_files(dir.path()).unwrap();
    let key = x0_schema::read_signing_key(&signing).unwrap();
    (ns, dir, key)
}

/// A command to n1, signed with `key`: route n4 through n3 (off its baseline via n2).
pub fn command(key: &x0_schema::SigningKey, id: &str, incident: &str, expires_at: i64) -> x0_schema::HealingCommand {
    let mut c = x0_schema::HealingCommand {
        schema_version: x0_schema::SCHEMA_VERSION,
        id: id.into(),
        incident_id: incident.into(),
        issued_at: x0_schema::wall_clock_ns(),
        expires_at,
        target: "n1".into(),
        action: x0_schema::Action::RouteReplace { destination: "n4".into(), primary: "n3".into(), backup: None },
        signature: String::new(),
    };
    c.sign(key);
    c
}
