//! Routes through rtnetlink, synchronously.
//!
//! The actuator's target trait is synchronous (one command, applied and verified,
//! then acknowledged), so this speaks rtnetlink over a plain blocking netlink socket
//! with the message types of `netlink-packet-route`, rather than through the async
//! `rtnetlink` crate's tokio connection. The socket lives in the network namespace of
//! the thread that opened it.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMessageBuffer, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::Ipv4Addr;
use x0_netlink::{invalid, RtSocket};

/// Our routing protocol id (`proto 77` in `ip route`): how we find, and only touch,
/// the routes we own.
pub const ROUTE_PROTOCOL: u8 = 77;

/// One IPv4 host route as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRoute {
    /// The destination's /32.
    pub destination: Ipv4Addr,
    /// The next hop's address on the shared link.
    pub gateway: Ipv4Addr,
    /// The interface towards the next hop.
    pub oif: u32,
    /// The route's metric (primary or backup).
    pub metric: u32,
    /// The kernel marked the next hop's device as without carrier.
    pub linkdown: bool,
}

#[derive(Debug)]
/// An rtnetlink socket for our routes, in the namespace of the thread that opened it.
pub struct RouteSocket {
    socket: RtSocket,
}

/// Our U-turn tables are `UTURN_TABLE_BASE + k` (k < 50), selected by rules at
/// priority `UTURN_RULE_BASE + k` matching the incoming interface.
pub(crate) const UTURN_TABLE_BASE: u8 = 200;
pub(crate) const UTURN_RULE_BASE: u32 = 20_000;

fn message(dst: Ipv4Addr, metric: u32) -> RouteMessage {
    message_in(RouteHeader::RT_TABLE_MAIN, dst, metric)
}

fn message_in(table: u8, dst: Ipv4Addr, metric: u32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 32;
    m.header.table = table;
    m.header.protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    m.attributes.push(RouteAttribute::Priority(metric));
    m
}

impl RouteSocket {
    /// Opens a route socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        Ok(RouteSocket { socket: RtSocket::open()? })
    }

    /// Installs (or replaces) `dst/32 via gateway dev oif metric M proto 77`.
    pub fn replace(&mut self, r: &KernelRoute) -> io::Result<()> {
        self.replace_in(RouteHeader::RT_TABLE_MAIN, r)
    }

    /// [`RouteSocket::replace`] in routing table `table`.
    pub fn replace_in(&mut self, table: u8, r: &KernelRoute) -> io::Result<()> {
        let mut m = message_in(table, r.destination, r.metric);
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(r.gateway)));
        m.attributes.push(RouteAttribute::Oif(r.oif));
        self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_REPLACE).map(|_| ())
    }

    /// Removes our route to `dst` at `metric`; absent is fine.
    pub fn delete(&mut self, dst: Ipv4Addr, metric: u32) -> io::Result<()> {
        match self.request(RouteNetlinkMessage::DelRoute(message(dst, metric)), 0) {
            Err(e) if e.raw_os_error() == Some(libc_esrch()) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Every IPv4 route in the main table that carries our protocol id.
    pub fn ours(&mut self) -> io::Result<Vec<KernelRoute>> {
        Ok(self.main_table()?.into_iter().filter(|(p, _)| *p == ROUTE_PROTOCOL).map(|(_, r)| r).collect())
    }

    /// Every IPv4 gateway route in the main table, whoever installed it, with the
    /// installer's protocol id (babeld's routes, ours, static ones).
    pub fn main_table(&mut self) -> io::Result<Vec<(u8, KernelRoute)>> {
        self.table(RouteHeader::RT_TABLE_MAIN)
    }

    /// Removes our routes from the U-turn tables and our rules selecting them.
    pub fn clear_uturns(&mut self) -> io::Result<()> {
        let uturn_tables = u32::from(UTURN_TABLE_BASE)..u32::from(UTURN_TABLE_BASE) + 50;
        for r in self.routes()? {
            if r.protocol == ROUTE_PROTOCOL && uturn_tables.contains(&r.table) {
                let m = message_in(r.table as u8, r.route.destination, r.route.metric);
                self.request(RouteNetlinkMessage::DelRoute(m), 0)?;
            }
        }
        let mut get = RuleMessage::default();
        get.header.family = AddressFamily::Inet;
        for msg in self.request(RouteNetlinkMessage::GetRule(get), NLM_F_DUMP)? {
            let RouteNetlinkMessage::NewRule(rule) = msg else { continue };
            let ours = rule.attributes.iter().any(
                |a| matches!(a, RuleAttribute::Priority(p) if (UTURN_RULE_BASE..UTURN_RULE_BASE + 50).contains(p)),
            );
            if ours {
                self.request(RouteNetlinkMessage::DelRule(rule), 0)?;
            }
        }
        Ok(())
    }

    /// `ip rule add iif IFNAME lookup UTURN_TABLE_BASE+k priority UTURN_RULE_BASE+k`.
    pub fn add_uturn_rule(&mut self, iifname: &str, k: u8) -> io::Result<()> {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.table = UTURN_TABLE_BASE + k;
        m.header.action = RuleAction::ToTable;
        m.attributes.push(RuleAttribute::Iifname(iifname.to_string()));
        m.attributes.push(RuleAttribute::Priority(UTURN_RULE_BASE + u32::from(k)));
        m.attributes.push(RuleAttribute::Table(u32::from(UTURN_TABLE_BASE + k)));
        self.request(RouteNetlinkMessage::NewRule(m), NLM_F_CREATE).map(|_| ())
    }

    /// Every IPv4 gateway route in routing table `table`, with its protocol id.
    pub fn table(&mut self, table: u8) -> io::Result<Vec<(u8, KernelRoute)>> {
        Ok(self.routes()?.into_iter().filter(|r| r.table == u32::from(table)).map(|r| (r.protocol, r.route)).collect())
    }

    /// Every IPv4 gateway route in every table, as one `RTM_GETROUTE` dump.
    ///
    /// Walked with netlink-packet-route's zero-copy buffers, decoding only the header
    /// and the four attributes we use: its full `RouteMessage` parse decodes every
    /// attribute of every route, and the actuator reads the table back after each
    /// command and on every reconcile (the same treatment as the agent's link dump).
    fn routes(&mut self) -> io::Result<Vec<TableRoute>> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        self.socket.dump(RouteNetlinkMessage::GetRoute(m), NLM_F_ACK | NLM_F_DUMP, RTM_NEWROUTE, table_route)
    }

    /// Sends one request (acknowledged) and collects the replies.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.socket.request(msg, NLM_F_ACK | flags)
    }
}

/// One route of a dump, with the table it is in and who installed it.
struct TableRoute {
    table: u32,
    protocol: u8,
    route: KernelRoute,
}

// From linux/rtnetlink.h.
const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RTNH_F_LINKDOWN: u32 = 16;

/// Decodes one `RTM_NEWROUTE`; `None` for routes without an IPv4 destination and gateway.
fn table_route(payload: &[u8]) -> io::Result<Option<TableRoute>> {
    let r = RouteMessageBuffer::new_checked(payload).map_err(invalid)?;
    let ipv4 = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
    let u32_of = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(u32::from_ne_bytes);
    let (mut dst, mut gateway, mut oif, mut metric, mut table) = (None, None, 0, 0, u32::from(r.table()));
    for nla in r.attributes() {
        let nla = nla.map_err(invalid)?;
        let v = nla.value();
        match nla.kind() {
            RTA_DST => dst = ipv4(v),
            RTA_GATEWAY => gateway = ipv4(v),
            RTA_OIF => oif = u32_of(v).unwrap_or(0),
            RTA_PRIORITY => metric = u32_of(v).unwrap_or(0),
            RTA_TABLE => table = u32_of(v).unwrap_or(table),
            _ => {}
        }
    }
    let (Some(destination), Some(gateway)) = (dst, gateway) else { return Ok(None) };
    let linkdown = r.flags() & RTNH_F_LINKDOWN != 0;
    Ok(Some(TableRoute {
        table,
        protocol: r.protocol(),
        route: KernelRoute { destination, gateway, oif, metric, linkdown },
    }))
}

fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}
