//! Kernel struct offsets from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE relocations, so user space resolves the few
//! offsets the probes need and patches them in as globals before load. aya-obj keeps
//! its BTF member lookups private; btf-rs parses `/sys/kernel/btf/vmlinux` for us.

use super::ProbeError;
use btf_rs::{Btf, BtfType, Type};

/// The offsets the probes read through, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelOffsets {
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub dev_nd_net: u32,
    pub dev_ifindex: u32,
    pub net_ns_inum: u32,
    pub sk_net: u32,
}

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

impl KernelOffsets {
    pub(crate) fn from_running_kernel() -> Result<Self, ProbeError> {
        let btf = Btf::from_file(VMLINUX)
            .map_err(|e| ProbeError::Btf(format!("{VMLINUX}: {e} (kernel built without CONFIG_DEBUG_INFO_BTF?)")))?;
        let off = |st: &str, path: &[&str]| offset_of(&btf, st, path);
        Ok(KernelOffsets {
            skb_dev: off("sk_buff", &["dev"])?,
            skb_sk: off("sk_buff", &["sk"])?,
            // possible_net_t wraps the pointer: nd_net.net
            dev_nd_net: off("net_device", &["nd_net", "net"])?,
            dev_ifindex: off("net_device", &["ifindex"])?,
            net_ns_inum: off("net", &["ns", "inum"])?,
            sk_net: off("sock", &["__sk_common", "skc_net", "net"])?,
        })
    }
}

/// Byte offset of `path` (member names, one per nesting level) inside struct `name`.
/// Members of anonymous structs and unions are searched through, as C does.
fn offset_of(btf: &Btf, name: &str, path: &[&str]) -> Result<u32, ProbeError> {
    let not_found = || ProbeError::Btf(format!("no member {} in struct {name}", path.join(".")));
    let types = btf.resolve_types_by_name(name).map_err(|e| ProbeError::Btf(format!("struct {name}: {e}")))?;
    let root =
        types.into_iter().find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty())).ok_or_else(not_found)?;
    let mut ty = root;
    let mut bits = 0u32;
    for member in path {
        let (off, next) = find_member(btf, &ty, member)?.ok_or_else(not_found)?;
        bits += off;
        ty = next;
    }
    if !bits.is_multiple_of(8) {
        return Err(ProbeError::Btf(format!("{name}.{} is a bitfield", path.join("."))));
    }
    Ok(bits / 8)
}

/// Finds `member` in a struct or union, descending into anonymous members; returns its
/// bit offset and (typedef-resolved) type.
fn find_member(btf: &Btf, ty: &Type, member: &str) -> Result<Option<(u32, Type)>, ProbeError> {
    let members = match ty {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return Ok(None),
    };
    let err = |e: anyhow::Error| ProbeError::Btf(e.to_string());
    for m in members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let mty = strip(btf, btf.resolve_chained_type(m).map_err(err)?)?;
        if name == member {
            return Ok(Some((m.bit_offset(), mty)));
        }
        if name.is_empty() {
            if let Some((inner, t)) = find_member(btf, &mty, member)? {
                return Ok(Some((m.bit_offset() + inner, t)));
            }
        }
    }
    Ok(None)
}

/// Resolves typedefs and qualifiers down to the underlying type.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type, ProbeError> {
    loop {
        ty = match &ty {
            Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) | Type::TypeTag(_) => {
                let inner: &dyn BtfType = ty.as_btf_type().expect("qualifiers are BTF types");
                btf.resolve_chained_type(inner).map_err(|e| ProbeError::Btf(e.to_string()))?
            }
            _ => return Ok(ty),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resolve_on_this_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            println!("SKIPPED: {VMLINUX} missing (kernel without BTF)");
            return;
        }
        let o = KernelOffsets::from_running_kernel().expect("offsets");
        // Sanity, not exact values: they move between kernels.
        assert!(o.skb_dev < 64 && o.skb_sk > o.skb_dev, "{o:?}");
        assert!(o.dev_ifindex > 0 && o.dev_nd_net > 0, "{o:?}");
        assert_ne!(o.net_ns_inum, 0, "{o:?}");
    }
}
