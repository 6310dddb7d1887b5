//! Builds the kernel probes (`ebpf/probes`) for BPF with the nightly toolchain and
//! bpf-linker; the object lands in OUT_DIR and is embedded by `src/probes/mod.rs`.
//!
//! A fresh machine has neither nightly's `rust-src` nor `bpf-linker`, and the demo
//! needs no probe, so without them this script warns and embeds an empty object: the
//! agent then says at start that it runs on the kernel's interface counters. CI sets
//! `X0_REQUIRE_EBPF=1`, which turns any failure to build the probes into an error.
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "rustup component add rust-src --toolchain nightly && \
                       cargo install bpf-linker --version 0.10.4 --locked";

fn main() {
    // Read at run time, not with env!(): a build script binary cached in a shared
    // target directory may have been compiled from another checkout.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../ebpf/probes");
    let root = root.canonicalize().expect("ebpf/probes exists");
    let root = root.to_str().expect("utf-8 path");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("x0-probes");
    println!("cargo:rerun-if-changed={root}/../common");
    println!("cargo:rerun-if-env-changed=X0_REQUIRE_EBPF");
    let required = std::env::var("X0_REQUIRE_EBPF").is_ok_and(|v| v == "1");

    if let Some(missing) = missing_toolchain() {
        if required {
            panic!("X0_REQUIRE_EBPF=1 but the eBPF toolchain is incomplete: {missing}\ninstall it with: {INSTALL}");
        }
        println!(
            "cargo:warning=eBPF probes not built ({missing}); agents will run on the kernel's interface \
             counters. To build them: {INSTALL}"
        );
        watch_for_install();
        std::fs::write(&out, []).expect("write the empty probe object");
        return;
    }
    if let Err(e) = aya_build::build_ebpf(
        [aya_build::Package { name: "x0-probes", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    ) {
        // The toolchain is there, so this is a defect in the probes: never hide it.
        panic!("building the eBPF probes failed: {e:#}");
    }
}

/// What of the eBPF toolchain is missing, if anything.
fn missing_toolchain() -> Option<String> {
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !linker.is_ok_and(|o| o.status.success()) {
        return Some("bpf-linker is not on the PATH".into());
    }
    match nightly_sysroot() {
        None => Some("no nightly toolchain (rustup run nightly rustc)".into()),
        Some(sysroot) if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() => {
            Some("the nightly toolchain has no rust-src component".into())
        }
        Some(_) => None,
    }
}

fn nightly_sysroot() -> Option<PathBuf> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

/// Reruns this script once the toolchain is installed: cargo cannot see a new binary
/// on the PATH, but it sees the directories an install writes into change.
fn watch_for_install() {
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")));
    if let Ok(home) = cargo_home {
        println!("cargo:rerun-if-changed={}", home.join("bin").display());
    }
    if let Some(sysroot) = nightly_sysroot() {
        println!("cargo:rerun-if-changed={}", sysroot.join("lib/rustlib").display());
    }
}
