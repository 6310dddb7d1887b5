//! The kernel's own view of the node's interfaces (rtnetlink `RTM_GETLINK`): carrier
//! state for every sample, and the counters the agent falls back to when the eBPF
//! probes cannot load. Read in the calling thread's network namespace.

use netlink_packet_core::{NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkFlags, LinkMessage, LinkMessageBuffer, Stats64Buffer};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// One interface as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub ifindex: u32,
    pub name: String,
    /// Administratively up and with carrier (`IFF_LOWER_UP`).
    pub carrier: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// Every interface in the calling thread's namespace (one-off; an agent keeps an
/// [`InterfaceReader`]).
pub fn read_interfaces() -> io::Result<Vec<InterfaceStats>> {
    InterfaceReader::open()?.read()
}

// From linux/netlink.h and linux/rtnetlink.h / if_link.h.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;
/// The first eight u64 counters of `rtnl_link_stats64` (all we read; kernels append fields).
const STATS64_PREFIX: usize = 64;

/// A netlink socket kept open for periodic link dumps, bound in the namespace of the
/// thread that opened it.
///
/// The dump is walked with netlink-packet-route's zero-copy buffers and only the
/// header, name and 64-bit counters are decoded: its full `LinkMessage` parse decodes
/// every attribute (and formats error contexts for each), which made this read half
/// of an agent's CPU time at 10 reads a second.
pub struct InterfaceReader {
    socket: Socket,
    sequence: u32,
}

impl std::fmt::Debug for InterfaceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceReader").field("sequence", &self.sequence).finish()
    }
}

impl InterfaceReader {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(InterfaceReader { socket, sequence: 0 })
    }

    /// Every interface, as one `RTM_GETLINK` dump.
    pub fn read(&mut self) -> io::Result<Vec<InterfaceStats>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.sequence;
        let mut packet =
            NetlinkMessage::new(header, NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkBuffer::new_checked(&data[offset..]).map_err(invalid)?;
                let len = msg.length() as usize;
                if msg.sequence_number() == self.sequence {
                    match msg.message_type() {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => return Err(dump_error(&data[offset..])),
                        RTM_NEWLINK => out.push(link_stats(msg.payload())?),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn dump_error(bytes: &[u8]) -> io::Error {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(NetlinkMessage { payload: NetlinkPayload::Error(e), .. }) => match e.code {
            Some(code) => io::Error::from_raw_os_error(-code.get()),
            None => invalid("link dump ended with an acknowledgement, not NLMSG_DONE"),
        },
        Ok(_) => invalid("unexpected netlink message"),
        Err(e) => invalid(e),
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
