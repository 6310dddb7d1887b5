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
        // The kernel's linkwatch may take up to a second to mark it (under load).
        let marked = (0..40).any(|_| {
            let down = s.ours().unwrap()[0].linkdown;
            if !down {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            down
        });
        assert!(marked, "{:?}", s.ours());
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

/// A node agent killed and restarted: the actuator it starts with reads its journal
/// and puts the job's override back into the kernel's table (not the baseline it
/// installs first), and answers the command again as it did the first time.
#[test]
fn a_restarted_actuator_puts_the_override_back_in_the_kernel() {
    if skip_unless_root("a_restarted_actuator_puts_the_override_back_in_the_kernel") {
        return;
    }
    use x0_actuator::{Actuator, KernelRouteTarget, PRIMARY_METRIC};
    use x0_schema::{Action, HealingCommand, ResultStatus};
    let state = tempfile::tempdir().unwrap();
    let journal = state.path().join("n1.journal.json");
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let net = two_neighbours();
        let key = x0_schema::generate_signing_key();
        let mut cmd = HealingCommand {
            schema_version: x0_schema::SCHEMA_VERSION,
            id: "inc-1.c1.0000".into(),
            incident_id: "inc-1".into(),
            issued_at: 0,
            expires_at: i64::MAX,
            target: "n1".into(),
            action: Action::RouteReplace { destination: "n4".into(), primary: "n3".into(), backup: None },
            signature: String::new(),
        };
        cmd.sign(&key);
        let n4 = Ipv4Addr::new(10, 79, 0, 4);
        let gateway_to_n4 = || {
            let mut s = RouteSocket::open().unwrap();
            s.ours().unwrap().into_iter().find(|r| r.destination == n4 && r.metric == PRIMARY_METRIC).map(|r| r.gateway)
        };
        let first = {
            let target = KernelRouteTarget::start(net.clone()).unwrap();
            let mut a = Actuator::with_journal("n1", key.verifying_key(), target, &journal).unwrap();
            let r = a.handle(&cmd.to_json(), 1);
            assert_eq!(r.status, ResultStatus::Applied, "{r:?}");
            r
        }; // the agent dies: nothing of it is left but its journal and the kernel's table
        assert_eq!(gateway_to_n4(), Some(Ipv4Addr::new(10, 78, 2, 2)));

        let restarted = std::time::Instant::now();
        let target = KernelRouteTarget::start(net).unwrap();
        let mut a = Actuator::with_journal("n1", key.verifying_key(), target, &journal).unwrap();
        let took = restarted.elapsed();
        assert_eq!(gateway_to_n4(), Some(Ipv4Addr::new(10, 78, 2, 2)), "the override is back (via n3)");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        assert_eq!(a.handle(&cmd.to_json(), 2), first, "the redelivered command gets its first answer");
        assert_eq!(a.applications(), 0, "and is not applied again");
        println!("override back in the kernel {took:?} after the actuator restarted");
    })
    .join()
    .unwrap();
}

/// In the calling thread's (fresh) namespace: node n1 with neighbours n2 (over x0a)
/// and n3 (over x0c), destinations n2, n3 and n4, n4 reached through n2 at baseline.
fn two_neighbours() -> x0_actuator::NodeNetwork {
    use x0_actuator::{BaselineRoute, Neighbour, NodeNetwork};
    for (a, b, net) in [("x0a", "x0b", 1), ("x0c", "x0d", 2)] {
        ip(&format!("link add {a} type veth peer name {b}"));
        ip(&format!("addr add 10.78.{net}.1/24 dev {a}"));
        ip(&format!("link set {a} up"));
        ip(&format!("link set {b} up"));
    }
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

/// A batch of route changes reaches the kernel in one transaction: a batch with one
/// impossible route changes nothing; a good one changes every route it names.
#[test]
fn a_route_batch_reaches_the_kernel_whole_or_not_at_all() {
    if skip_unless_root("a_route_batch_reaches_the_kernel_whole_or_not_at_all") {
        return;
    }
    use x0_actuator::{KernelRouteTarget, RouteTarget, TargetError, PRIMARY_METRIC};
    use x0_schema::Action;
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut target = KernelRouteTarget::start(two_neighbours()).unwrap();
        let gateway = |d: u8| {
            let mut s = RouteSocket::open().unwrap();
            let dst = Ipv4Addr::new(10, 79, 0, d);
            s.ours()
                .unwrap()
                .into_iter()
                .find(|r| r.destination == dst && r.metric == PRIMARY_METRIC)
                .map(|r| r.gateway)
        };
        let (via_n2, via_n3) = (Ipv4Addr::new(10, 78, 1, 2), Ipv4Addr::new(10, 78, 2, 2));
        assert_eq!((gateway(4), gateway(2)), (Some(via_n2), Some(via_n2)), "the baseline");
        let replace =
            |d: &str, p: &str| Action::RouteReplace { destination: d.into(), primary: p.into(), backup: None };

        let bad = Action::RouteBatch { routes: vec![replace("n4", "n3"), replace("n2", "n9")] };
        assert!(matches!(target.apply(&bad), Err(TargetError::Invalid(_))));
        assert_eq!(gateway(4), Some(via_n2), "nothing of a refused batch reaches the kernel");

        let good = Action::RouteBatch {
            routes: vec![
                replace("n4", "n3"),
                Action::RouteReplace { destination: "n2".into(), primary: "n3".into(), backup: Some("n2".into()) },
            ],
        };
        target.apply(&good).unwrap();
        assert_eq!((gateway(4), gateway(2)), (Some(via_n3), Some(via_n3)));

        let back = Action::RouteBatch {
            routes: vec![
                Action::RouteWithdraw { destination: "n4".into() },
                Action::RouteWithdraw { destination: "n2".into() },
            ],
        };
        target.apply(&back).unwrap();
        assert_eq!((gateway(4), gateway(2)), (Some(via_n2), Some(via_n2)), "back to the baseline");
    })
    .join()
    .unwrap();
}
