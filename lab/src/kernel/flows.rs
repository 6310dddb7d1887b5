//! Probe flows: real UDP packets between the scenario's node pairs, each carrying its
//! flow id, sequence number and send time, sent from the source's namespace to the
//! destination's node address and logged on arrival. Outage and recovery come from
//! these logs only, never from the pipeline's records.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use x0_ingest::in_netns;

/// UDP port the probe flows use.
pub const FLOW_PORT: u16 = 7700;
const MAGIC: u32 = 0x7830_666c; // "x0fl"

#[derive(Debug, Clone)]
/// One probe flow: numbered UDP packets from one node's address to another's.
pub struct FlowSpec {
    /// The sender's namespace.
    pub src_ns: String,
    /// The receiver's namespace.
    pub dst_ns: String,
    /// The sender's node address.
    pub src_addr: std::net::Ipv4Addr,
    /// The receiver's node address.
    pub dst_addr: std::net::Ipv4Addr,
}

/// Per flow: send time of every sequence number, and which arrived.
#[derive(Debug, Default, Clone)]
pub struct FlowLog {
    /// When each packet was sent (ns since the epoch of the flows).
    pub sent_ns: Vec<u64>,
    /// Whether each packet arrived.
    pub received: Vec<bool>,
}

/// Running flows; [`Flows::stop`] returns the logs.
pub struct Flows {
    stop: Arc<AtomicBool>,
    logs: Arc<Mutex<Vec<FlowLog>>>,
    threads: Vec<JoinHandle<()>>,
    epoch: Instant,
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows").field("threads", &self.threads.len()).finish()
    }
}

fn encode(flow: u32, seq: u64, sent_ns: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&flow.to_be_bytes());
    b[8..16].copy_from_slice(&seq.to_be_bytes());
    b[16..24].copy_from_slice(&sent_ns.to_be_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(u32, u64)> {
    if b.len() < 24 || b[0..4] != MAGIC.to_be_bytes() {
        return None;
    }
    Some((u32::from_be_bytes(b[4..8].try_into().ok()?), u64::from_be_bytes(b[8..16].try_into().ok()?)))
}

impl Flows {
    /// Starts one receiver per destination namespace and one sender per source
    /// namespace; every flow sends a packet each `interval`.
    pub fn start(specs: &[FlowSpec], interval: Duration, epoch: Instant) -> std::io::Result<Flows> {
        let stop = Arc::new(AtomicBool::new(false));
        let logs = Arc::new(Mutex::new(vec![FlowLog::default(); specs.len()]));
        let mut threads = Vec::new();
        let mut dst_ns: Vec<&String> = specs.iter().map(|s| &s.dst_ns).collect();
        dst_ns.sort();
        dst_ns.dedup();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        for ns in dst_ns.iter().map(|s| s.to_string()) {
            let (stop, logs, ready) = (stop.clone(), logs.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || {
                let r = in_netns(&ns, || {
                    let sock = match UdpSocket::bind(("0.0.0.0", FLOW_PORT)) {
                        Ok(s) => s,
                        Err(e) => return ready.send(Err(e)).unwrap_or(()),
                    };
                    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
                    let _ = ready.send(Ok(()));
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(n) = sock.recv(&mut buf) else { continue };
                        if let Some((flow, seq)) = decode(&buf[..n]) {
                            let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(log) = logs.get_mut(flow as usize) {
                                if let Some(r) = log.received.get_mut(seq as usize) {
                                    *r = true;
                                }
                            }
                        }
                    }
                });
                if let Err(e) = r {
                    let _ = ready.send(Err(e));
                }
            }));
        }
        for _ in 0..dst_ns.len() {
            ready_rx.recv().map_err(|e| std::io::Error::other(e.to_string()))??;
        }
        let mut by_src: std::collections::BTreeMap<String, Vec<(u32, FlowSpec)>> = Default::default();
        for (i, s) in specs.iter().enumerate() {
            by_src.entry(s.src_ns.clone()).or_default().push((i as u32, s.clone()));
        }
        for (ns, flows) in by_src {
            let (stop, logs) = (stop.clone(), logs.clone());
            threads.push(std::thread::spawn(move || {
                let _ = in_netns(&ns, || {
                    let socks: Vec<_> = flows
                        .iter()
                        .filter_map(|(_, f)| UdpSocket::bind(SocketAddrV4::new(f.src_addr, 0)).ok())
                        .collect();
                    let mut seq = 0u64;
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let sent_ns = epoch.elapsed().as_nanos() as u64;
                        {
                            let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
                            for (id, _) in &flows {
                                let log = &mut logs[*id as usize];
                                log.sent_ns.push(sent_ns);
                                log.received.push(false);
                            }
                        }
                        for ((id, f), sock) in flows.iter().zip(&socks) {
                            let _ = sock.send_to(&encode(*id, seq, sent_ns), SocketAddrV4::new(f.dst_addr, FLOW_PORT));
                        }
                        seq += 1;
                        let next = start + interval * seq as u32;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                });
            }));
        }
        Ok(Flows { stop, logs, threads, epoch })
    }

    /// The instant the flows count time from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// A copy of the logs so far (flows keep running).
    pub fn snapshot(&self) -> Vec<FlowLog> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the flows; returns every flow's log.
    pub fn stop(self) -> Vec<FlowLog> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        Arc::try_unwrap(self.logs).map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).unwrap_or_default()
    }
}

/// What the flows saw around one fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    /// Packets sent in [from, until) that never arrived, over all flows.
    pub lost: u64,
    /// Packets sent in the span.
    pub sent: u64,
    /// Flows that lost at least one packet.
    pub flows_hit: usize,
    /// Time from `from` until the last loss, plus one send interval, when the flows
    /// then stayed loss-free for `quiet` before `until`; `Some(0)` when nothing was
    /// lost; `None` when losses went on to the end (never restored).
    pub restored_after: Option<Duration>,
}

/// Judges the window [from, until) (ns since the flows' epoch). Packets sent in the
/// last `grace` before a snapshot may still be in flight and are not judged.
pub fn impact<'a>(
    logs: impl IntoIterator<Item = &'a FlowLog>,
    from_ns: u64,
    until_ns: u64,
    interval: Duration,
    quiet: Duration,
) -> Impact {
    let mut lost = 0;
    let mut sent = 0;
    let mut hit = 0;
    let mut last_loss: Option<u64> = None;
    for log in logs {
        let mut flow_lost = 0;
        for (i, &t) in log.sent_ns.iter().enumerate() {
            if t < from_ns || t >= until_ns {
                continue;
            }
            sent += 1;
            if !log.received[i] {
                flow_lost += 1;
                last_loss = Some(last_loss.map_or(t, |l| l.max(t)));
            }
        }
        lost += flow_lost;
        hit += usize::from(flow_lost > 0);
    }
    let restored_after = match last_loss {
        None => Some(Duration::ZERO),
        Some(t) if t + (quiet.as_nanos() as u64) <= until_ns => {
            Some(Duration::from_nanos(t.saturating_sub(from_ns)) + interval)
        }
        Some(_) => None,
    };
    Impact { lost, sent, flows_hit: hit, restored_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(sent_every_ms: u64, n: usize, lost: &[usize]) -> FlowLog {
        FlowLog {
            sent_ns: (0..n as u64).map(|i| i * sent_every_ms * 1_000_000).collect(),
            received: (0..n).map(|i| !lost.contains(&i)).collect(),
        }
    }

    #[test]
    fn restoration_is_the_last_loss_plus_one_interval() {
        let ms = 1_000_000;
        let logs = vec![log(10, 500, &[100, 101, 102]), log(10, 500, &[])];
        let i = impact(&logs, 1000 * ms, 5000 * ms, Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(i.lost, 3);
        assert_eq!(i.flows_hit, 1);
        assert_eq!(i.restored_after, Some(Duration::from_millis(30)));
    }

    #[test]
    fn losses_to_the_end_are_not_restored_and_no_loss_is_zero() {
        let ms = 1_000_000;
        let logs = vec![log(10, 500, &[480])];
        let i = impact(&logs, 1000 * ms, 5000 * ms, Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(i.restored_after, None);
        let logs = vec![log(10, 500, &[])];
        let i = impact(&logs, 1000 * ms, 5000 * ms, Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(i.restored_after, Some(Duration::ZERO));
    }

    #[test]
    fn packets_round_trip() {
        assert_eq!(decode(&encode(7, 99, 5)), Some((7, 99)));
        assert_eq!(decode(b"garbage that is long enough....."), None);
    }
}
