//! Active link probes: a small UDP echo to each neighbour's address on the shared
//! link, every probe interval. Loss and RTT of the link itself (connected route, one
//! hop), independent of the traffic and of the routing table.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// UDP port every agent answers link probes on.
pub const PROBE_PORT: u16 = 7071;
const MAGIC: u32 = 0x7830_7072; // "x0pr"
const REQUEST: u8 = 0;
const REPLY: u8 = 1;

/// Probe results of one neighbour since the last [`LinkProber::take`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbeStats {
    /// Probes answered or timed out in the period.
    pub sent: u64,
    /// Of those, how many got no answer in time.
    pub lost: u64,
    /// Sum of the answered probes' round-trip times (µs).
    pub rtt_sum_us: f64,
    /// The slowest answer (µs).
    pub rtt_max_us: f64,
}

impl ProbeStats {
    /// Mean round-trip time of the answered probes (µs), 0 when none was.
    pub fn rtt_avg_us(&self) -> f64 {
        let answered = self.sent - self.lost;
        if answered == 0 {
            0.0
        } else {
            self.rtt_sum_us / answered as f64
        }
    }
}

/// Probes every neighbour and answers their probes. Not thread-safe by design: the
/// agent's data-plane thread owns it and calls [`LinkProber::poll`] often.
#[derive(Debug)]
pub struct LinkProber {
    socket: UdpSocket,
    peers: Vec<Ipv4Addr>,
    interval: Duration,
    timeout: Duration,
    next_send: Instant,
    seq: u64,
    epoch: Instant,
    outstanding: HashMap<(usize, u64), Instant>,
    stats: Vec<ProbeStats>,
}

fn packet(kind: u8, seq: u64) -> [u8; 13] {
    let mut b = [0u8; 13];
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4] = kind;
    b[5..13].copy_from_slice(&seq.to_be_bytes());
    b
}

impl LinkProber {
    /// Binds the probe port (in the calling thread's namespace).
    pub fn bind(peers: Vec<Ipv4Addr>, interval: Duration, timeout: Duration) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(("0.0.0.0", PROBE_PORT))?;
        socket.set_nonblocking(true)?;
        let n = peers.len();
        let now = Instant::now();
        Ok(LinkProber {
            socket,
            peers,
            interval,
            timeout,
            next_send: now,
            seq: 0,
            epoch: now,
            outstanding: HashMap::new(),
            stats: vec![ProbeStats::default(); n],
        })
    }

    /// Changes the interval between probes (a `probe-rate` command).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Answers probes, matches replies, sends what is due, expires what timed out.
    pub fn poll(&mut self, now: Instant) {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            if n < 13 || buf[0..4] != MAGIC.to_be_bytes() {
                continue;
            }
            let seq = u64::from_be_bytes(buf[5..13].try_into().unwrap_or_default());
            match buf[4] {
                REQUEST => {
                    let _ = self.socket.send_to(&packet(REPLY, seq), from);
                }
                REPLY => {
                    let std::net::SocketAddr::V4(from) = from else { continue };
                    let Some(peer) = self.peers.iter().position(|p| p == from.ip()) else { continue };
                    if let Some(sent) = self.outstanding.remove(&(peer, seq)) {
                        let rtt = now.saturating_duration_since(sent).as_secs_f64() * 1e6;
                        let s = &mut self.stats[peer];
                        s.sent += 1;
                        s.rtt_sum_us += rtt;
                        s.rtt_max_us = s.rtt_max_us.max(rtt);
                    }
                }
                _ => {}
            }
        }
        if now >= self.next_send {
            self.seq += 1;
            for (i, peer) in self.peers.iter().enumerate() {
                // A send error (no carrier, no route) is a lost probe, found by timeout.
                let _ = self.socket.send_to(&packet(REQUEST, self.seq), SocketAddrV4::new(*peer, PROBE_PORT));
                self.outstanding.insert((i, self.seq), now);
            }
            self.next_send = self.epoch + self.interval * (self.seq as u32);
            if self.next_send < now {
                self.next_send = now + self.interval;
            }
        }
        let timeout = self.timeout;
        let stats = &mut self.stats;
        self.outstanding.retain(|(peer, _), sent| {
            let expired = now.saturating_duration_since(*sent) >= timeout;
            if expired {
                stats[*peer].sent += 1;
                stats[*peer].lost += 1;
            }
            !expired
        });
    }

    /// When [`LinkProber::poll`] next has work without a packet arriving: the next
    /// probe to send or the first outstanding one to expire.
    pub fn next_due(&self) -> Instant {
        let expiry = self.outstanding.values().min().map(|sent| *sent + self.timeout);
        expiry.map_or(self.next_send, |e| e.min(self.next_send))
    }

    /// Per neighbour (in the order given to `bind`), the results since the last call.
    pub fn take(&mut self) -> Vec<ProbeStats> {
        let n = self.stats.len();
        std::mem::replace(&mut self.stats, vec![ProbeStats::default(); n])
    }
}

/// The probe socket, so that a caller can sleep in poll(2) until a probe or reply
/// arrives instead of waking on a timer (answers stay prompt and RTTs exact).
impl AsFd for LinkProber {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
