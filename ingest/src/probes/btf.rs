//! Kernel struct offsets from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE relocations, so user space resolves the few
//! offsets the probes need and patches them in as globals before load.
//!
//! Why our own reader: the kernel's BTF describes ~100k types, and the general
//! parsers (btf-rs; aya-obj keeps its member lookups private) materialise every one
//! of them with names and hash maps: 30 MB of peak memory in an agent whose budget is
//! 50 MB, to answer six questions. This reader keeps the raw section (5 MB), one
//! `u32` per type (where it starts), and walks only the structs it is asked about.
//! The format is the kernel's `Documentation/bpf/btf.rst`.

use super::ProbeError;

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
        let raw = std::fs::read(VMLINUX)
            .map_err(|e| ProbeError::Btf(format!("{VMLINUX}: {e} (kernel built without CONFIG_DEBUG_INFO_BTF?)")))?;
        let btf = Btf::parse(&raw)?;
        let off = |st: &str, path: &[&str]| btf.offset_of(st, path);
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

const MAGIC: u16 = 0xeb9f;
const TYPE_HEADER: usize = 12;

// BTF kinds (btf.rst, "BTF_KIND_*") this reader needs by name.
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

/// A borrowed view of a raw BTF blob: the type and string sections and where each
/// type starts (index = type id; id 0 is `void`).
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    starts: Vec<u32>,
}

/// One type's header.
#[derive(Clone, Copy)]
struct TypeHeader {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
}

fn bad(what: &str) -> ProbeError {
    ProbeError::Btf(format!("malformed BTF: {what}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ProbeError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| bad("truncated"))
}

impl<'a> Btf<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, ProbeError> {
        let magic = raw.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]])).ok_or_else(|| bad("empty"))?;
        if magic != MAGIC {
            return Err(bad("bad magic (not little-endian BTF?)"));
        }
        let hdr_len = u32_at(raw, 4)? as usize;
        let section = |off: usize, len: usize| -> Result<&'a [u8], ProbeError> {
            let (start, len) = (hdr_len + u32_at(raw, off)? as usize, u32_at(raw, len)? as usize);
            raw.get(start..start + len).ok_or_else(|| bad("section out of bounds"))
        };
        let (types, strings) = (section(8, 12)?, section(16, 20)?);
        let mut starts = vec![0u32]; // id 0: void, never read
        let mut at = 0usize;
        while at < types.len() {
            starts.push(at as u32);
            let h = header(types, at)?;
            at += TYPE_HEADER + trailer_len(types, at, h)?;
        }
        Ok(Btf { types, strings, starts })
    }

    fn header(&self, id: u32) -> Result<TypeHeader, ProbeError> {
        let at = *self.starts.get(id as usize).filter(|_| id != 0).ok_or_else(|| bad("type id out of range"))?;
        header(self.types, at as usize)
    }

    fn name(&self, off: u32) -> &'a str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn strip(&self, mut id: u32) -> Result<u32, ProbeError> {
        for _ in 0..32 {
            let h = self.header(id)?;
            match h.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => id = h.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(bad("qualifier chain too long"))
    }

    /// Byte offset of `path` (member names, one per nesting level) inside struct `name`.
    /// Members of anonymous structs and unions are searched through, as C does.
    fn offset_of(&self, name: &str, path: &[&str]) -> Result<u32, ProbeError> {
        let not_found = || ProbeError::Btf(format!("no member {} in struct {name}", path.join(".")));
        let root = (1..self.starts.len() as u32)
            .find(|&id| {
                self.header(id).is_ok_and(|h| h.kind == KIND_STRUCT && h.vlen > 0 && self.name(h.name_off) == name)
            })
            .ok_or_else(|| ProbeError::Btf(format!("no struct {name} in the kernel's BTF")))?;
        let (mut ty, mut bits) = (root, 0u32);
        for member in path {
            let (off, next) = self.find_member(ty, member, 0)?.ok_or_else(not_found)?;
            bits += off;
            ty = next;
        }
        if !bits.is_multiple_of(8) {
            return Err(ProbeError::Btf(format!("{name}.{} is a bitfield", path.join("."))));
        }
        Ok(bits / 8)
    }

    /// Finds `member` in struct or union `id`, descending into anonymous members;
    /// returns its bit offset and (typedef-resolved) type id.
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Result<Option<(u32, u32)>, ProbeError> {
        let h = self.header(id)?;
        if !matches!(h.kind, KIND_STRUCT | KIND_UNION) || depth > 16 {
            return Ok(None);
        }
        let base = self.starts[id as usize] as usize + TYPE_HEADER;
        for i in 0..h.vlen {
            let at = base + i * 12;
            let (name_off, mty, raw_off) =
                (u32_at(self.types, at)?, u32_at(self.types, at + 4)?, u32_at(self.types, at + 8)?);
            // With kind_flag set the top byte is the bitfield size.
            let bit_off = if h.kind_flag { raw_off & 0x00ff_ffff } else { raw_off };
            let mname = self.name(name_off);
            let mty = self.strip(mty)?;
            if mname == member {
                return Ok(Some((bit_off, mty)));
            }
            if mname.is_empty() {
                if let Some((inner, t)) = self.find_member(mty, member, depth + 1)? {
                    return Ok(Some((bit_off + inner, t)));
                }
            }
        }
        Ok(None)
    }
}

fn header(types: &[u8], at: usize) -> Result<TypeHeader, ProbeError> {
    let info = u32_at(types, at + 4)?;
    Ok(TypeHeader {
        name_off: u32_at(types, at)?,
        kind: (info >> 24) & 0x1f,
        vlen: (info & 0xffff) as usize,
        kind_flag: info >> 31 == 1,
        size_or_type: u32_at(types, at + 8)?,
    })
}

/// Bytes that follow a type's 12-byte header, by kind.
fn trailer_len(types: &[u8], at: usize, h: TypeHeader) -> Result<usize, ProbeError> {
    Ok(match h.kind {
        1 | 14 | 17 => 4,               // int (encoding), var (linkage), decl_tag (component)
        3 => 12,                        // array
        4 | 5 | 15 | 19 => 12 * h.vlen, // struct, union: members; datasec: vars; enum64
        6 | 13 => 8 * h.vlen,           // enum values; func_proto params
        2 | 7 | 8..=12 | 16 | 18 => 0,  // ptr, fwd, typedef, qualifiers, func, float, type_tag
        k => return Err(bad(&format!("unknown kind {k} at byte {at} of {}", types.len()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built blob: `struct outer { int a; union { struct inner *p; int q; }; }`
    /// with `typedef struct outer outer_t`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0p\0q\0inner\0outer_t\0".to_vec();
        let s = |name: &str| {
            let pos =
                strings.windows(name.len() + 1).position(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0);
            pos.map(|p| p as u32).unwrap_or(0)
        };
        let mut t = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size_or_type: u32, trailer: &[u32]| {
            for v in [name, (kind << 24) | vlen, size_or_type].iter().chain(trailer) {
                t.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(s("int"), 1, 0, 4, &[32]); // 1: int
        ty(s("inner"), 7, 0, 0, &[]); // 2: fwd inner
        ty(0, 2, 0, 2, &[]); // 3: ptr to inner
        ty(0, 5, 2, 8, &[s("p"), 3, 0, s("q"), 1, 0]); // 4: anonymous union
        ty(s("outer"), 4, 2, 16, &[s("a"), 1, 0, 0, 4, 64]); // 5: struct outer
        ty(s("outer_t"), 8, 0, 5, &[]); // 6: typedef
        let mut raw = Vec::new();
        raw.extend_from_slice(&MAGIC.to_le_bytes());
        raw.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        raw.extend_from_slice(&t);
        raw.extend_from_slice(&strings);
        raw
    }

    #[test]
    fn members_of_anonymous_unions_are_found_with_their_offsets() {
        let raw = blob();
        let btf = Btf::parse(&raw).unwrap();
        assert_eq!(btf.starts.len(), 7);
        assert_eq!(btf.offset_of("outer", &["a"]).unwrap(), 0);
        assert_eq!(btf.offset_of("outer", &["q"]).unwrap(), 8);
        assert!(btf.offset_of("outer", &["missing"]).is_err());
        assert!(btf.offset_of("nothing", &["a"]).is_err());
        assert!(Btf::parse(&raw[..30]).is_err(), "truncated blobs are refused");
    }

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
        println!("{o:?}");
    }
}
