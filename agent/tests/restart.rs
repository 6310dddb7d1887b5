//! The `x0-agent` binary killed (SIGKILL) while its node carries the job's override,
//! and started again: it puts the override back into the kernel's table from its
//! journal, answers the command's redelivery with its first answer, and what it says it
//! owns is what the kernel has. A real agent in a network namespace, its commands over
//! the embedded broker (librdkafka's mock cluster), its routes over rtnetlink. Needs
//! root; without it prints SKIPPED (with `X0_REQUIRE_KERNEL_TESTS=1` a skip fails).
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x0_actuator::{BaselineRoute, Neighbour, NodeNetwork};
use x0_kafka::rdkafka::consumer::StreamConsumer;
use x0_kafka::rdkafka::producer::FutureRecord;
use x0_kafka::rdkafka::Message;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_schema::{Action, CommandResult, HealingCommand, ResultStatus, Topics};

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return false;
    }
    assert_ne!(std::env::var("X0_REQUIRE_KERNEL_TESTS").as_deref(), Ok("1"), "{test}: needs root");
    println!("SKIPPED {test}: needs root (network namespaces, rtnetlink)");
    true
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The gateway of our primary route to n4 (10.79.0.4) in the namespace, if any.
fn route_to_n4(ns: &str) -> Option<String> {
    let out = ip(&["-n", ns, "route", "show", "10.79.0.4", "proto", "77", "metric", "100"]);
    out.split_whitespace().skip_while(|w| *w != "via").nth(1).map(str::to_string)
}

/// An agent process, killed when the test ends however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn network() -> NodeNetwork {
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

fn start_agent(ns: &str, dir: &Path, brokers: &str) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_x0-agent"))
        .args(["--node", "n1", "--netns", ns, "--brokers", brokers, "--no-ebpf"])
        .arg("--network")
        .arg(dir.join("n1.json"))
        .arg("--verify-key")
        .arg(dir.join("verifying.key"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("X0_CONFIG")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Agent(child)
}

async fn result_of(results: &StreamConsumer, id: &str) -> CommandResult {
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

#[test]
fn a_killed_agent_puts_the_override_back_when_it_restarts() {
    if skip_unless_root("a_killed_agent_puts_the_override_back_when_it_restarts") {
        return;
    }
    let ns = Netns(format!("x0rst-{}", std::process::id()));
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
    // The mock cluster is not Send: it lives on this thread, the clients on a runtime.
    let broker = DevBroker::start(&Topics::default(), 1).unwrap();
    let kafka = KafkaConfig::for_brokers(&broker.bootstrap_servers());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let results: StreamConsumer = kafka.consumer("restart-test", &[&kafka.topics.command_results]).unwrap();
        let producer = kafka.producer().unwrap();
        let mut agent = start_agent(&ns.0, dir.path(), &kafka.brokers);
        let mut cmd = HealingCommand {
            schema_version: x0_schema::SCHEMA_VERSION,
            id: "inc-1.c1.00000000".into(),
            incident_id: "inc-1".into(),
            issued_at: x0_schema::wall_clock_ns(),
            expires_at: x0_schema::wall_clock_ns() + 600_000_000_000,
            target: "n1".into(),
            action: Action::RouteReplace { destination: "n4".into(), primary: "n3".into(), backup: None },
            signature: String::new(),
        };
        cmd.sign(&key);
        let send = || async {
            let json = cmd.to_json();
            producer
                .send(FutureRecord::to(&kafka.topics.commands).key("n1").payload(&json), Duration::from_secs(5))
                .await
                .unwrap();
        };
        send().await;
        let first = result_of(&results, &cmd.id).await;
        assert_eq!(first.status, ResultStatus::Applied, "{first:?}");
        assert_eq!(route_to_n4(&ns.0).as_deref(), Some("10.78.2.2"), "the override is in the kernel (via n3)");

        // The agent dies; the node's table loses our routes too (a reboot would).
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.0.id() as i32), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
        agent.0.wait().unwrap();
        ip(&["-n", &ns.0, "route", "flush", "proto", "77"]);
        assert_eq!(route_to_n4(&ns.0), None);

        let restarted = Instant::now();
        let _agent = start_agent(&ns.0, dir.path(), &kafka.brokers);
        while route_to_n4(&ns.0).as_deref() != Some("10.78.2.2") && restarted.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = restarted.elapsed();
        assert!(back < Duration::from_secs(2), "override back {back:?} after the restart (at most 2 s)");
        println!("override back in the kernel {back:?} after the agent restarted");

        // Delivered again (a replaying job): the first answer, not a refusal, and what
        // the agent says it owns is what the kernel has.
        send().await;
        let again = result_of(&results, &cmd.id).await;
        assert_eq!((again.status, again.applied_at), (first.status, first.applied_at), "{again:?}");
        let owned = again.routes.iter().find(|r| r.destination == "n4").map(|r| r.next_hop.as_str());
        assert_eq!(owned, Some("n3"), "{again:?}");
        assert_eq!(route_to_n4(&ns.0).as_deref(), Some("10.78.2.2"));
    });
    drop(broker);
}
