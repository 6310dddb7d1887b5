//! Tracepoint field offsets and drop-reason names from tracefs `format` files.

use super::ProbeError;
use std::collections::HashMap;
use std::path::PathBuf;

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

pub(crate) fn tracefs_root() -> Result<PathBuf, ProbeError> {
    if let Some(root) = TRACEFS.iter().map(PathBuf::from).find(|p| p.join("events").is_dir()) {
        return Ok(root);
    }
    mount_tracefs()
}

/// Mounts tracefs where the kernel documents it. A machine fresh from boot often has
/// none (systemd mounts it on demand, minimal images never), and every tracepoint
/// probe needs it; mounting it is what an operator would do by hand, so do it rather
/// than fail (after building a whole lab, as `lab run` once did).
fn mount_tracefs() -> Result<PathBuf, ProbeError> {
    let root = PathBuf::from(TRACEFS[0]);
    nix::mount::mount(Some("tracefs"), &root, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>).map_err(
        |e| {
            ProbeError::Tracefs(format!(
                "tracefs is not mounted and mounting it failed ({e}); as root: mount -t tracefs tracefs {}",
                root.display()
            ))
        },
    )?;
    if !root.join("events").is_dir() {
        return Err(ProbeError::Tracefs(format!("mounted tracefs at {} but it has no events/", root.display())));
    }
    eprintln!("tracefs was not mounted: mounted it at {}", root.display());
    Ok(root)
}

/// Where tracefs is, mounted first if it was not: call it before building anything that
/// needs the probes, so a missing tracefs is fixed, or reported, at once.
pub fn ensure_tracefs() -> Result<PathBuf, ProbeError> {
    tracefs_root()
}

/// One tracepoint's `format` file.
#[derive(Debug)]
pub(crate) struct TracepointFormat {
    fields: HashMap<String, u32>,
    print_fmt: String,
}

impl TracepointFormat {
    pub(crate) fn read(category: &str, name: &str) -> Result<Self, ProbeError> {
        let path = tracefs_root()?.join("events").join(category).join(name).join("format");
        let text =
            std::fs::read_to_string(&path).map_err(|e| ProbeError::Tracefs(format!("{}: {e}", path.display())))?;
        Ok(Self::parse(&text))
    }

    pub(crate) fn parse(text: &str) -> Self {
        let mut fields = HashMap::new();
        let mut print_fmt = String::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("print fmt:") {
                print_fmt = rest.to_string();
            }
            let Some(decl) = line.strip_prefix("field:") else { continue };
            let mut parts = decl.split(';');
            let decl = parts.next().unwrap_or_default();
            let name = decl.rsplit([' ', '*']).next().unwrap_or_default();
            let name = name.split('[').next().unwrap_or_default();
            let offset = parts.find_map(|p| p.trim().strip_prefix("offset:")?.parse().ok());
            if let Some(offset) = offset {
                fields.insert(name.to_string(), offset);
            }
        }
        TracepointFormat { fields, print_fmt }
    }

    pub(crate) fn offset(&self, field: &str) -> Result<u32, ProbeError> {
        self.fields.get(field).copied().ok_or_else(|| ProbeError::Tracefs(format!("tracepoint has no field {field}")))
    }

    /// The `{ value, "NAME" }` pairs of the print format's `__print_symbolic`, which
    /// is where `skb:kfree_skb` lists every drop reason of the running kernel.
    pub(crate) fn symbols(&self) -> HashMap<u32, String> {
        let mut out = HashMap::new();
        let mut rest = self.print_fmt.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let inner = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let Some((value, name)) = inner.split_once(',') else { continue };
            if let Ok(value) = value.trim().parse() {
                out.insert(value, name.trim().trim_matches('"').to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KFREE: &str = r#"name: kfree_skb
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:void * skbaddr;	offset:8;	size:8;	signed:0;
	field:void * rx_sk;	offset:24;	size:8;	signed:0;
	field:enum skb_drop_reason reason;	offset:36;	size:4;	signed:0;
	field:__u8 daddr[4];	offset:38;	size:4;	signed:0;

print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 62, "TC_EGRESS" })
"#;

    #[test]
    fn parses_offsets_and_reason_names() {
        let f = TracepointFormat::parse(KFREE);
        assert_eq!(f.offset("skbaddr").unwrap(), 8);
        assert_eq!(f.offset("rx_sk").unwrap(), 24);
        assert_eq!(f.offset("reason").unwrap(), 36);
        assert_eq!(f.offset("daddr").unwrap(), 38);
        assert!(f.offset("nope").is_err());
        let s = f.symbols();
        assert_eq!(s[&62], "TC_EGRESS");
        assert_eq!(s[&2], "NOT_SPECIFIED");
    }
}
