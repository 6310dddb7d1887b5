//! x0tta6bl4's kernel probes.
//!
//! - `x0_tc_ingress` / `x0_tc_egress` (TC, per interface): packet and byte counters.
//! - `x0_kfree_skb` (tracepoint `skb:kfree_skb`): drops with their `skb_drop_reason`,
//!   per interface, kept only for the network namespace this instance serves.
//! - `x0_tcp_retransmit` (tracepoint `tcp:tcp_retransmit_skb`): retransmits per IPv4
//!   destination, same namespace filter.
//! - `x0_tc_fault` (TC egress, lab only): drops a configured share of packets, the
//!   lab's gray-failure injector.
//!
//! Host-wide tracepoints see every namespace; each agent loads its own instance with
//! `X0_NETNS_INO` set to its namespace's inode and keeps only events whose device (or
//! socket) lives there. Kernel struct offsets are globals filled in by user space from
//! the running kernel's BTF (Rust eBPF emits no CO-RE relocations).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Kernel programs read kernel memory through raw pointers (the skb, tracepoint records,
// per-CPU map slots): the one crate where the workspace's unsafe_code ban cannot hold.
// Each read is bounded by the verifier when the program loads.
#![allow(unsafe_code)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

// The entry points are found by their exported symbols (the program macros mark them
// `#[no_mangle]`), not by path, so `pub` there is not a crate surface.
#[cfg(target_arch = "bpf")]
#[allow(unreachable_pub)]
mod probes {
    use aya_ebpf::{
        bindings::TC_ACT_SHOT,
        helpers::{bpf_get_prandom_u32, bpf_probe_read_kernel},
        macros::{classifier, map, tracepoint},
        maps::{HashMap, PerCpuHashMap},
        programs::{TcContext, TracePointContext},
    };
    use x0_ebpf_common::{drop_key, if_key, is_real_drop};

    /// TC verdict "no opinion, run the next program" (TC_ACT_UNSPEC / TCX_NEXT).
    const TC_NEXT: i32 = -1;
    const AF_INET: u16 = 2;

    #[map(name = "X0_IF_COUNTERS")]
    static IF_COUNTERS: PerCpuHashMap<u64, [u64; 2]> = PerCpuHashMap::with_max_entries(1024, 0);
    #[map(name = "X0_DROPS")]
    static DROPS: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(4096, 0);
    #[map(name = "X0_RETRANS")]
    static RETRANS: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(1024, 0);
    #[map(name = "X0_FAULT_DROP")]
    static FAULT_DROP: HashMap<u32, u32> = HashMap::with_max_entries(256, 0);

    #[no_mangle]
    static X0_NETNS_INO: u32 = 0;
    #[no_mangle]
    static X0_OFF_SKB_DEV: u32 = 0;
    #[no_mangle]
    static X0_OFF_SKB_SK: u32 = 0;
    #[no_mangle]
    static X0_OFF_DEV_ND_NET: u32 = 0;
    #[no_mangle]
    static X0_OFF_DEV_IFINDEX: u32 = 0;
    #[no_mangle]
    static X0_OFF_NET_NS_INUM: u32 = 0;
    #[no_mangle]
    static X0_OFF_SK_NET: u32 = 0;
    #[no_mangle]
    static X0_TP_KFREE_SKBADDR: u32 = 8;
    #[no_mangle]
    static X0_TP_KFREE_REASON: u32 = 36;
    #[no_mangle]
    static X0_TP_RETRANS_SKADDR: u32 = 16;
    #[no_mangle]
    static X0_TP_RETRANS_FAMILY: u32 = 32;
    #[no_mangle]
    static X0_TP_RETRANS_DADDR: u32 = 38;

    /// Globals must be read volatile, or the compiler folds in the value they had at
    /// compile time instead of the one user space patched in.
    #[inline(always)]
    fn global(g: &u32) -> usize {
        unsafe { core::ptr::read_volatile(g) as usize }
    }

    #[inline(always)]
    fn count(ctx: &TcContext, egress: bool) {
        let (ifindex, len) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).len) };
        let key = if_key(ifindex, egress);
        match IF_COUNTERS.get_ptr_mut(key) {
            // Per-CPU values: no other CPU writes this slot, plain adds are exact.
            Some(v) => unsafe {
                (*v)[0] += 1;
                (*v)[1] += len as u64;
            },
            None => {
                let _ = IF_COUNTERS.insert(key, [1, len as u64], 0);
            }
        }
    }

    #[classifier]
    pub fn x0_tc_ingress(ctx: TcContext) -> i32 {
        count(&ctx, false);
        TC_NEXT
    }

    #[classifier]
    pub fn x0_tc_egress(ctx: TcContext) -> i32 {
        count(&ctx, true);
        TC_NEXT
    }

    #[classifier]
    pub fn x0_tc_fault(ctx: TcContext) -> i32 {
        let ifindex = unsafe { (*ctx.skb.skb).ifindex };
        match unsafe { FAULT_DROP.get(ifindex) } {
            Some(&threshold) if threshold > 0 && unsafe { bpf_get_prandom_u32() } < threshold => TC_ACT_SHOT as i32,
            _ => TC_NEXT,
        }
    }

    #[inline(always)]
    unsafe fn read_ptr(base: usize, off: usize) -> Option<usize> {
        let v: usize = bpf_probe_read_kernel((base + off) as *const usize).ok()?;
        (v != 0).then_some(v)
    }

    #[inline(always)]
    unsafe fn read_u32(base: usize, off: usize) -> Option<u32> {
        bpf_probe_read_kernel((base + off) as *const u32).ok()
    }

    /// `net->ns.inum` of the namespace `net` points to.
    #[inline(always)]
    unsafe fn netns_inum(net: usize) -> Option<u32> {
        read_u32(net, global(&X0_OFF_NET_NS_INUM))
    }

    #[inline(always)]
    unsafe fn sock_netns(sk: usize) -> Option<u32> {
        netns_inum(read_ptr(sk, global(&X0_OFF_SK_NET))?)
    }

    #[tracepoint(category = "skb", name = "kfree_skb")]
    pub fn x0_kfree_skb(ctx: TracePointContext) -> u32 {
        let _ = unsafe { on_kfree_skb(&ctx) };
        0
    }

    unsafe fn on_kfree_skb(ctx: &TracePointContext) -> Option<()> {
        let reason: u32 = ctx.read_at(global(&X0_TP_KFREE_REASON)).ok()?;
        if !is_real_drop(reason) {
            return None;
        }
        let skb: usize = ctx.read_at(global(&X0_TP_KFREE_SKBADDR)).ok()?;
        // The device the packet was on places it; a packet without one (dropped in a
        // socket) is placed by its socket's namespace.
        let (ifindex, ns) = match read_ptr(skb, global(&X0_OFF_SKB_DEV)) {
            Some(dev) => {
                (read_u32(dev, global(&X0_OFF_DEV_IFINDEX))?, netns_inum(read_ptr(dev, global(&X0_OFF_DEV_ND_NET))?)?)
            }
            None => (0, sock_netns(read_ptr(skb, global(&X0_OFF_SKB_SK))?)?),
        };
        if ns != global(&X0_NETNS_INO) as u32 {
            return None;
        }
        bump(&DROPS, drop_key(ifindex, reason));
        Some(())
    }

    #[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
    pub fn x0_tcp_retransmit(ctx: TracePointContext) -> u32 {
        let _ = unsafe { on_retransmit(&ctx) };
        0
    }

    unsafe fn on_retransmit(ctx: &TracePointContext) -> Option<()> {
        let family: u16 = ctx.read_at(global(&X0_TP_RETRANS_FAMILY)).ok()?;
        if family != AF_INET {
            return None;
        }
        let sk: usize = ctx.read_at(global(&X0_TP_RETRANS_SKADDR)).ok()?;
        if sock_netns(sk)? != global(&X0_NETNS_INO) as u32 {
            return None;
        }
        let daddr: u32 = ctx.read_at(global(&X0_TP_RETRANS_DADDR)).ok()?;
        bump(&RETRANS, daddr);
        Some(())
    }

    #[inline(always)]
    fn bump<K>(map: &PerCpuHashMap<K, u64>, key: K) {
        match map.get_ptr_mut(&key) {
            Some(v) => unsafe { *v += 1 },
            None => {
                let _ = map.insert(&key, &1, 0);
            }
        }
    }

    #[link_section = "license"]
    #[no_mangle]
    static LICENSE: [u8; 4] = *b"GPL\0";

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
