//! Builds the kernel probes (`ebpf/probes`) for BPF with the nightly toolchain and
//! bpf-linker (both installed by `.ci/run`); the object lands in OUT_DIR and is
//! embedded by `src/probes/mod.rs`.
fn main() {
    // Read at run time, not with env!(): a build script binary cached in a shared
    // target directory may have been compiled from another checkout.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = std::path::Path::new(&manifest).join("../ebpf/probes");
    let root = root.canonicalize().expect("ebpf/probes exists");
    let root = root.to_str().expect("utf-8 path");
    println!("cargo:rerun-if-changed={root}/../common");
    if let Err(e) = aya_build::build_ebpf(
        [aya_build::Package { name: "x0-probes", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    ) {
        panic!(
            "building the eBPF probes failed: {e:#}\n\
             they need the nightly toolchain with rust-src and bpf-linker:\n  \
             rustup component add rust-src --toolchain nightly\n  \
             cargo install bpf-linker --version 0.10.4 --locked"
        );
    }
}
