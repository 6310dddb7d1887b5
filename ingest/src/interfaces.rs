//! The kernel's own view of the node's interfaces (rtnetlink `RTM_GETLINK`): carrier
//! state for every sample, and the counters the agent falls back to when the eBPF
//! probes cannot load. Read in the calling thread's network namespace.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
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

/// Every interface in the calling thread's namespace.
pub fn read_interfaces() -> io::Result<Vec<InterfaceStats>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut packet =
        NetlinkMessage::new(header, NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut out = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(io::Error::from_raw_os_error(-code.get()));
                    }
                    return Ok(out);
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => out.push(stats(&link)),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn stats(link: &LinkMessage) -> InterfaceStats {
    let mut s = InterfaceStats {
        ifindex: link.header.index,
        carrier: link.header.flags.contains(LinkFlags::LowerUp),
        ..Default::default()
    };
    for a in &link.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Stats64(st) => {
                s.rx_packets = st.rx_packets;
                s.tx_packets = st.tx_packets;
                s.rx_bytes = st.rx_bytes;
                s.tx_bytes = st.tx_bytes;
                s.rx_errors = st.rx_errors;
                s.tx_errors = st.tx_errors;
                s.rx_dropped = st.rx_dropped;
                s.tx_dropped = st.tx_dropped;
            }
            _ => {}
        }
    }
    s
}
