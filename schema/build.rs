//! Fingerprints this crate's sources as `X0_CONTRACT_ID`: two binaries built from the
//! same contracts (telemetry, commands, results) carry the same id, so a tool can tell
//! an agent built from older sources before it rejects every command of a newer kind.
//! FNV-1a by hand: a fingerprint, not a security boundary, and a build script should
//! not pull a hashing crate in for it.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    println!("cargo:rerun-if-changed={}", src.display());
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in &all {
        let name = path.strip_prefix(&src).unwrap_or(path).to_string_lossy().into_owned();
        let body = std::fs::read(path).unwrap_or_default();
        for byte in name.bytes().chain([0]).chain(body).chain([0]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=X0_CONTRACT_ID={hash:016x}");
}
