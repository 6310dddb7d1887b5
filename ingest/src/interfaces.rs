//! The kernel's own view of the node's interfaces (rtnetlink `RTM_GETLINK`): carrier
//! state for every sample, and the counters the agent falls back to when the eBPF
//! probes cannot load. Read in the calling thread's network namespace.

use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_route::link::{LinkFlags, LinkMessage, LinkMessageBuffer, Stats64Buffer};
use netlink_packet_route::RouteNetlinkMessage;
use std::io;
use x0_netlink::{invalid, RtSocket};

/// One interface as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// The interface's index.
    pub ifindex: u32,
    /// The interface's name.
    pub name: String,
    /// Administratively up and with carrier (`IFF_LOWER_UP`).
    pub carrier: bool,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

/// Every interface in the calling thread's namespace (one-off; an agent keeps an
/// [`InterfaceReader`]).
pub fn read_interfaces() -> io::Result<Vec<InterfaceStats>> {
    InterfaceReader::open()?.read()
}

// From linux/rtnetlink.h and if_link.h.
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;
/// The first eight u64 counters of `rtnl_link_stats64` (all we read; kernels append fields).
const STATS64_PREFIX: usize = 64;

/// A netlink socket kept open for periodic link dumps, bound in the namespace of the
/// thread that opened it. Only the header, name and 64-bit counters of each link are
/// decoded (a zero-copy walk, see `x0_netlink`).
#[derive(Debug)]
pub struct InterfaceReader {
    socket: RtSocket,
}

impl InterfaceReader {
    /// Opens a socket in the calling thread's namespace.
    pub fn open() -> io::Result<Self> {
        Ok(InterfaceReader { socket: RtSocket::open()? })
    }

    /// Every interface, as one `RTM_GETLINK` dump.
    pub fn read(&mut self) -> io::Result<Vec<InterfaceStats>> {
        let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
        self.socket.dump(request, NLM_F_DUMP, RTM_NEWLINK, |payload| link_stats(payload).map(Some))
    }
}

fn link_stats(payload: &[u8]) -> io::Result<InterfaceStats> {
    let link = LinkMessageBuffer::new_checked(payload).map_err(invalid)?;
    let mut s = InterfaceStats {
        ifindex: link.link_index(),
        carrier: LinkFlags::from_bits_retain(link.flags()).contains(LinkFlags::LowerUp),
        ..Default::default()
    };
    for nla in link.attributes() {
        let nla = nla.map_err(invalid)?;
        match nla.kind() {
            IFLA_IFNAME => {
                let v = nla.value();
                let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                s.name = String::from_utf8_lossy(&v[..end]).into_owned();
            }
            IFLA_STATS64 if nla.value().len() >= STATS64_PREFIX => {
                let st = Stats64Buffer::new(nla.value());
                s.rx_packets = st.rx_packets();
                s.tx_packets = st.tx_packets();
                s.rx_bytes = st.rx_bytes();
                s.tx_bytes = st.tx_bytes();
                s.rx_errors = st.rx_errors();
                s.tx_errors = st.tx_errors();
                s.rx_dropped = st.rx_dropped();
                s.tx_dropped = st.tx_dropped();
            }
            _ => {}
        }
    }
    Ok(s)
}
