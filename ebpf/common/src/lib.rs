//! What the kernel probes and the user-space collector agree on: map names, map key
//! layouts and the names of the globals user space fills in before loading.
//!
//! Values are plain integers and integer arrays so that user space reads them through
//! aya's `Pod` impls without any `unsafe` of its own.
#![no_std]

/// Per-interface packet and byte counters, per CPU. Key: [`if_key`]; value `[packets, bytes]`.
pub const MAP_IF_COUNTERS: &str = "X0_IF_COUNTERS";
/// Kernel drops in this node's namespace, per CPU. Key: [`drop_key`]; value: count.
pub const MAP_DROPS: &str = "X0_DROPS";
/// TCP retransmits in this node's namespace, per CPU. Key: IPv4 destination (network
/// byte order as read from the tracepoint); value: count.
pub const MAP_RETRANSMITS: &str = "X0_RETRANS";
/// Fault injection: drop probability per egress interface. Key: ifindex; value: drop
/// threshold out of `u32::MAX` (0 = pass everything).
pub const MAP_FAULT_DROP: &str = "X0_FAULT_DROP";

/// Program names in the object file.
pub const PROG_TC_INGRESS: &str = "x0_tc_ingress";
/// Program name of the egress counter.
pub const PROG_TC_EGRESS: &str = "x0_tc_egress";
/// Program name of the lab's fault dropper.
pub const PROG_TC_FAULT: &str = "x0_tc_fault";
/// Program name of the `skb:kfree_skb` drop probe.
pub const PROG_KFREE_SKB: &str = "x0_kfree_skb";
/// Program name of the `tcp:tcp_retransmit_skb` probe.
pub const PROG_TCP_RETRANSMIT: &str = "x0_tcp_retransmit";

/// Globals user space sets before load (`EbpfLoader::set_global`). Kernel struct
/// offsets come from the running kernel's BTF, tracepoint field offsets from the
/// tracepoint's `format` file: Rust eBPF has no CO-RE relocations, so user space does
/// the relocation instead.
pub mod globals {
    /// Inode of the network namespace whose events this instance keeps.
    pub const NETNS_INO: &str = "X0_NETNS_INO";
    /// Offset of `sk_buff.dev`.
    pub const OFF_SKB_DEV: &str = "X0_OFF_SKB_DEV";
    /// Offset of `sk_buff.sk`.
    pub const OFF_SKB_SK: &str = "X0_OFF_SKB_SK";
    /// Offset of `net_device.nd_net`.
    pub const OFF_DEV_ND_NET: &str = "X0_OFF_DEV_ND_NET";
    /// Offset of `net_device.ifindex`.
    pub const OFF_DEV_IFINDEX: &str = "X0_OFF_DEV_IFINDEX";
    /// Offset of `net.ns.inum`.
    pub const OFF_NET_NS_INUM: &str = "X0_OFF_NET_NS_INUM";
    /// Offset of `sock_common.skc_net`.
    pub const OFF_SK_NET: &str = "X0_OFF_SK_NET";
    /// Offset of `skbaddr` in the `kfree_skb` tracepoint record.
    pub const TP_KFREE_SKBADDR: &str = "X0_TP_KFREE_SKBADDR";
    /// Offset of `reason` in the `kfree_skb` tracepoint record.
    pub const TP_KFREE_REASON: &str = "X0_TP_KFREE_REASON";
    /// Offset of `skaddr` in the `tcp_retransmit_skb` record.
    pub const TP_RETRANS_SKADDR: &str = "X0_TP_RETRANS_SKADDR";
    /// Offset of `family` in the `tcp_retransmit_skb` record.
    pub const TP_RETRANS_FAMILY: &str = "X0_TP_RETRANS_FAMILY";
    /// Offset of `daddr` in the `tcp_retransmit_skb` record.
    pub const TP_RETRANS_DADDR: &str = "X0_TP_RETRANS_DADDR";
}

/// Key of [`MAP_IF_COUNTERS`]: interface index and direction.
#[inline(always)]
pub const fn if_key(ifindex: u32, egress: bool) -> u64 {
    ((ifindex as u64) << 1) | egress as u64
}

/// Inverse of [`if_key`].
pub const fn split_if_key(key: u64) -> (u32, bool) {
    ((key >> 1) as u32, key & 1 == 1)
}

/// Key of [`MAP_DROPS`]: interface index (0 when the packet had no device) and the
/// kernel's `skb_drop_reason`.
#[inline(always)]
pub const fn drop_key(ifindex: u32, reason: u32) -> u64 {
    ((ifindex as u64) << 32) | reason as u64
}

/// Inverse of [`drop_key`].
pub const fn split_drop_key(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// `skb_drop_reason` values that are not drops (`SKB_NOT_DROPPED_YET`, `SKB_CONSUMED`).
pub const fn is_real_drop(reason: u32) -> bool {
    reason > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(split_if_key(if_key(70_000, true)), (70_000, true));
        assert_eq!(split_if_key(if_key(3, false)), (3, false));
        assert_eq!(split_drop_key(drop_key(12, 62)), (12, 62));
    }
}
