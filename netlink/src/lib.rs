//! rtnetlink plumbing shared by the collector (`ingest`: link dumps) and the actuator
//! (route changes and route dumps): a blocking `NETLINK_ROUTE` socket in the network
//! namespace of the thread that opened it, requests with sequence numbers, and a dump
//! walk that hands each reply's payload to the caller undecoded.
//!
//! Why dumps are walked zero-copy: netlink-packet-route's full message parse decodes
//! every attribute (and formats error contexts for each); at 10 link dumps a second
//! that was half of an agent's CPU. Callers decode only what they read, with the
//! crate's `*MessageBuffer` views.

use netlink_packet_core::{NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

// From linux/netlink.h.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// A route-netlink socket bound in the calling thread's network namespace.
pub struct RtSocket {
    socket: Socket,
    seq: u32,
}

impl std::fmt::Debug for RtSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtSocket").field("seq", &self.seq).finish()
    }
}

/// A decoding error as an `io::Error`.
pub fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The errno of an `NLMSG_ERROR` reply (an acknowledgement where a dump was expected
/// is itself an error).
fn error_reply(bytes: &[u8]) -> io::Error {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(NetlinkMessage { payload: NetlinkPayload::Error(e), .. }) => match e.code {
            Some(code) => io::Error::from_raw_os_error(-code.get()),
            None => invalid("dump ended with an acknowledgement, not NLMSG_DONE"),
        },
        Ok(_) => invalid("unexpected netlink message"),
        Err(e) => invalid(e),
    }
}

impl RtSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(RtSocket { socket, seq: 0 })
    }

    /// Serialises and sends one request (`NLM_F_REQUEST` plus `flags`); returns its
    /// sequence number.
    pub fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Sends a dump request and passes the payload of every reply of type `kind` to
    /// `decode`, until `NLMSG_DONE`; an `NLMSG_ERROR` ends it with that errno.
    pub fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        flags: u16,
        kind: u16,
        mut decode: impl FnMut(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let seq = self.send(request, flags)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkBuffer::new_checked(&data[offset..]).map_err(invalid)?;
                let len = msg.length() as usize;
                if msg.sequence_number() == seq {
                    match msg.message_type() {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => return Err(error_reply(&data[offset..])),
                        t if t == kind => out.extend(decode(msg.payload())?),
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

    /// Sends one request and collects its fully decoded replies until the ack or the
    /// end of the dump (for the few, small replies of route and rule changes).
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, flags)?;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..]).map_err(invalid)?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number != seq {
                    offset += len.max(1);
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

// From linux/rtnetlink.h.
const RTNLGRP_LINK: u32 = 1;

/// The kernel's link notifications (`RTNLGRP_LINK`: carrier, admin state, new or
/// removed interfaces) in the calling thread's network namespace, on a non-blocking
/// socket to sleep on in poll(2). The agent learns of a carrier change this way
/// instead of dumping every link ten times a second to look for one.
pub struct LinkEvents {
    socket: Socket,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEvents").finish_non_exhaustive()
    }
}

impl LinkEvents {
    /// Opens a socket subscribed to link notifications, in the calling thread's namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(RTNLGRP_LINK)?;
        socket.set_non_blocking(true)?;
        Ok(LinkEvents { socket })
    }

    /// Reads every pending notification; true when any arrived. An overrun socket
    /// (`ENOBUFS`: the kernel dropped notifications) also says true, so the caller
    /// re-reads the links rather than trusting what it has.
    pub fn drain(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            let mut free = &mut buf[..];
            match self.socket.recv(&mut free, 0) {
                Ok(0) => return any,
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return any,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

impl AsFd for LinkEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
