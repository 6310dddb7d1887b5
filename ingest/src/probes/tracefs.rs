//! Tracepoint field offsets and drop-reason names from tracefs `format` files.

use super::ProbeError;
use std::collections::HashMap;
use std::path::PathBuf;

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

pub(crate) fn tracefs_root() -> Result<PathBuf, ProbeError> {
    TRACEFS.iter().map(PathBuf::from).find(|p| p.join("events").is_dir()).ok_or_else(|| {
        ProbeError::Tracefs("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)".into())
    })
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
