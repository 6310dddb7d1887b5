//! The route socket against a real kernel: in a fresh network namespace with a veth
//! pair, our routes are installed, read back (table, protocol, metric, carrier),
//! found again in a U-turn table, and removed without touching anyone else's.
//! Needs root; without it prints SKIPPED (with `X0_REQUIRE_KERNEL_TESTS=1`, as
//! `.ci/run` sets for root, a skip fails).
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::process::Command;
use x0_actuator::{KernelRoute, RouteSocket, ROUTE_PROTOCOL};

fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return false;
    }
    assert_ne!(
        std::env::var("X0_REQUIRE_KERNEL_TESTS").as_deref(),
        Ok("1"),
        "{test}: needs root but X0_REQUIRE_KERNEL_TESTS=1"
    );
    println!("SKIPPED {test}: needs root (network namespaces, rtnetlink)");
    true
}

/// `ip` in the calling thread's namespace (test setup only; the actuator itself never
/// runs a command).
fn ip(args: &str) {
    let status = Command::new("ip").args(args.split_whitespace()).status().unwrap();
    assert!(status.success(), "ip {args}");
}

/// In the thread's namespace (sysfs shows the namespace it was mounted in).
fn ifindex(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).unwrap()
}

#[test]
fn routes_are_installed_read_back_and_removed_in_a_namespace() {
    if skip_unless_root("routes_are_installed_read_back_and_removed_in_a_namespace") {
        return;
    }
    // A thread of our own, moved into a new namespace: the namespace dies with it.
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        ip("link add x0a type veth peer name x0b");
        ip("addr add 10.77.0.1/24 dev x0a");
        ip("link set x0a up");
        ip("link set x0b up");
        ip("route add 10.77.5.5/32 via 10.77.0.2 metric 5"); // someone else's (proto boot)
        let mut s = RouteSocket::open().unwrap();
        let r = KernelRoute {
            destination: Ipv4Addr::new(10, 77, 9, 9),
            gateway: Ipv4Addr::new(10, 77, 0, 2),
            oif: ifindex("x0a"),
            metric: 10,
            linkdown: false,
        };
        s.replace(&r).unwrap();
        assert_eq!(s.ours().unwrap(), vec![r]);
        let main = s.main_table().unwrap();
        assert!(main.iter().any(|(p, k)| *p != ROUTE_PROTOCOL && k.destination == Ipv4Addr::new(10, 77, 5, 5)));

        // Carrier loss shows as linkdown on the route.
        ip("link set x0b down");
        assert!(s.ours().unwrap()[0].linkdown, "{:?}", s.ours());
        ip("link set x0b up");

        s.replace_in(201, &r).unwrap();
        s.add_uturn_rule("x0a", 1).unwrap();
        assert_eq!(s.table(201).unwrap(), vec![(ROUTE_PROTOCOL, r)]);
        s.clear_uturns().unwrap();
        assert!(s.table(201).unwrap().is_empty());
        let rules = Command::new("ip").args(["rule", "show"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&rules.stdout).contains("lookup 201"));

        s.delete(r.destination, r.metric).unwrap();
        s.delete(r.destination, r.metric).unwrap(); // absent is fine
        assert!(s.ours().unwrap().is_empty());
        assert_eq!(s.main_table().unwrap().len(), 1, "the route we do not own is left alone");
    })
    .join()
    .unwrap();
}
