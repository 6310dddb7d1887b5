//! The `x0-agent` binary killed (SIGKILL) while its node carries the job's override,
//! and started again: it puts the override back into the kernel's table from its
//! journal, answers the command's redelivery with its first answer, and what it says it
//! owns is what the kernel has. A real agent in a network namespace, its commands over
//! the embedded broker (librdkafka's mock cluster), its routes over rtnetlink. Needs
//! root; without it prints SKIPPED (with `X0_REQUIRE_KERNEL_TESTS=1` a skip fails).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};
use x0_kafka::rdkafka::consumer::StreamConsumer;
use x0_kafka::rdkafka::producer::FutureRecord;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_schema::{ResultStatus, Topics};

mod support;

use support::{ip, result_of, route_to_n4, skip_unless_root};

fn start_agent(ns: &str, dir: &Path, brokers: &str) -> support::Agent {
    support::start_agent(ns, dir, brokers, &[], None)
}

#[test]
fn a_killed_agent_puts_the_override_back_when_it_restarts() {
    if skip_unless_root("a_killed_agent_puts_the_override_back_when_it_restarts") {
        return;
    }
    let (ns, dir, key) = support::node("x0rst");
    // The mock cluster is not Send: it lives on this thread, the clients on a runtime.
    let broker = DevBroker::start(&Topics::default(), 1).unwrap();
    let kafka = KafkaConfig::for_brokers(&broker.bootstrap_servers());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let results: StreamConsumer = kafka.consumer("restart-test", &[&kafka.topics.command_results]).unwrap();
        let producer = kafka.producer().unwrap();
        let mut agent = start_agent(&ns.0, dir.path(), &kafka.brokers);
        let cmd = support::command(&key, "inc-1.c1.00000000", "inc-1", x0_schema::wall_clock_ns() + 600_000_000_000);
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
