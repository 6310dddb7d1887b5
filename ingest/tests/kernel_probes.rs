//! The eBPF probes against the kernel's own accounting, in real network namespaces.
//! Needs root; without it every test prints SKIPPED and the reason. With
//! `X0_REQUIRE_KERNEL_TESTS=1` (set by `.ci/run`) a skip is a failure instead.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use x0_ingest::{in_netns, interface_index, probes_available, FaultInjector, KernelProbes};

fn kernel_tests_possible(test: &str) -> bool {
    match probes_available() {
        Ok(()) => true,
        Err(why) if std::env::var("X0_REQUIRE_KERNEL_TESTS").as_deref() == Ok("1") => {
            panic!("{test}: cannot run ({why}) but X0_REQUIRE_KERNEL_TESTS=1")
        }
        Err(why) => {
            println!("SKIPPED {test}: {why}");
            false
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2 installed");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair (10.99.N.1 ↔ 10.99.N.2); removed on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str, n: u8) -> Pair {
        let (a, b) = (format!("x0t-{tag}-a"), format!("x0t-{tag}-b"));
        for ns in [&a, &b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &a, "link", "add", "eth-ab", "type", "veth", "peer", "name", "eth-ba", "netns", &b]);
        for (ns, dev, addr) in [(&a, "eth-ab", format!("10.99.{n}.1/30")), (&b, "eth-ba", format!("10.99.{n}.2/30"))] {
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        Pair { a, b }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `ip -s link` counters of `dev` in `ns`: (rx packets, rx bytes, tx packets, tx bytes).
fn kernel_stats(ns: &str, dev: &str) -> [u64; 4] {
    let out = Command::new("ip").args(["-n", ns, "-s", "-j", "link", "show", "dev", dev]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0]["stats64"];
    let n = |d: &str, f: &str| s[d][f].as_u64().unwrap();
    [n("rx", "packets"), n("rx", "bytes"), n("tx", "packets"), n("tx", "bytes")]
}

fn within(ours: u64, kernel: u64, tolerance: f64) -> bool {
    (ours as f64 - kernel as f64).abs() <= tolerance * kernel as f64
}

#[test]
fn tc_counters_agree_with_ip_link_stats_under_load() {
    if !kernel_tests_possible("tc_counters_agree_with_ip_link_stats_under_load") {
        return;
    }
    let pair = Pair::new("cnt", 1);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let b = pair.b.clone();
    let sink = std::thread::spawn(move || {
        in_netns(&b, || {
            let sock = UdpSocket::bind("10.99.1.2:9000").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while sock.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        })
        .unwrap()
    });
    rx.recv().unwrap();
    let (probes, before, sent) = in_netns(&pair.a, || {
        let mut probes = KernelProbes::load().unwrap();
        probes.attach_interface("eth-ab").unwrap();
        let before = kernel_stats(&pair.a, "eth-ab");
        // Load in both directions: b sends to a while a sends to b.
        let b = pair.b.clone();
        let reverse = std::thread::spawn(move || {
            in_netns(&b, || {
                let sock = UdpSocket::bind("10.99.1.2:0").unwrap();
                for i in 0..10_000u32 {
                    sock.send_to(&vec![9u8; 100 + (i % 900) as usize], "10.99.1.1:9000").unwrap();
                }
            })
            .unwrap()
        });
        let sock = UdpSocket::bind("10.99.1.1:0").unwrap();
        let mut sent = 0u64;
        for i in 0..20_000u32 {
            let len = 64 + (i % 1200) as usize;
            sock.send_to(&vec![7u8; len], "10.99.1.2:9000").unwrap();
            sent += 1;
        }
        reverse.join().unwrap();
        (probes, before, sent)
    })
    .unwrap();
    let received = sink.join().unwrap();
    let after = kernel_stats(&pair.a, "eth-ab");
    let ifindex = in_netns(&pair.a, || interface_index("eth-ab")).unwrap().unwrap();
    let snap = probes.snapshot().unwrap();
    let ours = snap.interfaces[&ifindex];
    let kernel: Vec<u64> = (0..4).map(|i| after[i] - before[i]).collect();
    println!("sent {sent}, received {received}; ours {ours:?}; kernel (rx p, rx B, tx p, tx B) {kernel:?}");
    assert!(kernel[2] >= 20_000 && kernel[0] >= 10_000, "the load went through: {kernel:?}");
    for (name, o, k) in [
        ("rx packets", ours.rx_packets, kernel[0]),
        ("rx bytes", ours.rx_bytes, kernel[1]),
        ("tx packets", ours.tx_packets, kernel[2]),
        ("tx bytes", ours.tx_bytes, kernel[3]),
    ] {
        assert!(within(o, k, 0.01), "{name}: eBPF {o} vs ip -s link {k} (more than 1% apart)");
    }
}

#[test]
fn drops_and_retransmits_are_attributed_to_the_right_namespace() {
    if !kernel_tests_possible("drops_and_retransmits_are_attributed_to_the_right_namespace") {
        return;
    }
    let pair = Pair::new("attr", 2);
    let bystander = Pair::new("bys", 3);
    let load = |ns: &str, dev: &str| {
        in_netns(ns, || {
            let mut p = KernelProbes::load().unwrap();
            p.attach_interface(dev).unwrap();
            (p, interface_index(dev).unwrap())
        })
        .unwrap()
    };
    let (probes_a, if_a) = load(&pair.a, "eth-ab");
    let (probes_b, if_b) = load(&pair.b, "eth-ba");
    let (probes_c, _) = load(&bystander.a, "eth-ab");

    // A TCP stream a → b; then b's egress (its ACKs) is dropped by the fault injector.
    let b = pair.b.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        in_netns(&b, || {
            let l = TcpListener::bind("10.99.2.2:9001").unwrap();
            ready_tx.send(()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        })
        .unwrap()
    });
    ready_rx.recv().unwrap();
    let mut injector = in_netns(&pair.b, || {
        let mut f = FaultInjector::load().unwrap();
        f.attach("eth-ba").unwrap();
        f
    })
    .unwrap();
    let a = pair.a.clone();
    let client = std::thread::spawn(move || {
        in_netns(&a, || {
            let mut s = TcpStream::connect("10.99.2.2:9001").unwrap();
            let chunk = vec![1u8; 16384];
            let until = Instant::now() + Duration::from_millis(2500);
            while Instant::now() < until {
                if s.write_all(&chunk).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    injector.set_loss(if_b, 1.0).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    injector.set_loss(if_b, 0.0).unwrap();
    client.join().unwrap();
    let _ = server.join().unwrap();

    let (sa, sb, sc) = (probes_a.snapshot().unwrap(), probes_b.snapshot().unwrap(), probes_c.snapshot().unwrap());
    println!("a drops {:?} retrans {:?}", sa.drops, sa.retransmits);
    println!("b drops {:?} retrans {:?}", sb.drops, sb.retransmits);
    println!("bystander drops {:?} retrans {:?}", sc.drops, sc.retransmits);
    let tc_egress_b: u64 =
        sb.drops.iter().filter(|d| d.reason == "TC_EGRESS" && d.ifindex == if_b).map(|d| d.count).sum();
    assert!(tc_egress_b > 0, "the injected drops show on b's interface as TC_EGRESS: {:?}", sb.drops);
    assert!(!sa.drops.iter().any(|d| d.reason == "TC_EGRESS"), "b's drops are not a's: {:?} (a's if {if_a})", sa.drops);
    assert!(!sc.drops.iter().any(|d| d.reason == "TC_EGRESS"), "nor the bystander's: {:?}", sc.drops);
    let to_b = sa.retransmits.get(&"10.99.2.2".parse().unwrap()).copied().unwrap_or(0);
    assert!(to_b > 0, "a retransmitted to b while b's ACKs were dropped: {:?}", sa.retransmits);
    assert!(sb.retransmits.is_empty() && sc.retransmits.is_empty(), "only a retransmitted");
}

/// Regression: `lab run` of a loss scenario failed 10 s in, after building the whole
/// mesh, because a freshly booted machine had no tracefs mounted. Now the probes mount
/// it themselves. Run in a private mount namespace, where tracefs is unmounted first,
/// so the machine's own mount is never touched.
#[test]
fn a_missing_tracefs_is_mounted_before_the_probes_need_it() {
    if !kernel_tests_possible("a_missing_tracefs_is_mounted_before_the_probes_need_it") {
        return;
    }
    let host_had_it = std::path::Path::new("/sys/kernel/tracing/events").is_dir();
    let outcome = std::thread::spawn(|| -> Result<(), String> {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            .map_err(|e| format!("making mounts private: {e}"))?;
        for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            while umount2(root, MntFlags::MNT_DETACH).is_ok() {}
        }
        let gone = !std::path::Path::new("/sys/kernel/tracing/events").is_dir();
        assert!(gone, "tracefs still mounted in the private namespace");
        let root = x0_ingest::ensure_tracefs().map_err(|e| e.to_string())?;
        assert!(root.join("events/skb/kfree_skb/format").is_file(), "{}", root.display());
        Ok(())
    })
    .join()
    .expect("test thread");
    outcome.unwrap();
    let host_has_it = std::path::Path::new("/sys/kernel/tracing/events").is_dir();
    assert!(!host_had_it || host_has_it, "the host's tracefs is untouched");
}
