//! Links the unwinder statically instead of loading libgcc_s.so.1: the build
//! script of the binaries whose start-up is on a launch's path (`capexec`,
//! started by every `capexec run`, and `capexec-oci`, started by the engine
//! for every container operation).
//!
//! Rust's standard library on linux-gnu asks for libgcc_s for its unwinder
//! (panics, backtraces). Loaded at run time, it is one more shared object
//! for ld.so to open, map and relocate, and its constructor runs the CPU
//! feature probe a second time (CPUID, which traps to the hypervisor on a
//! VM) — on every start. The same unwinder comes as a static archive
//! with gcc (libgcc_eh.a, what `gcc -static-libgcc` links). Named here, it
//! sits before the standard library's `-lgcc_s` on the link line, so the
//! linker takes the unwinder from it and `--as-needed` drops libgcc_s
//! (`-bundle`: left out of the rlib and found by the linker in gcc's own
//! directory, as the standard library's own libraries are).
//! Measured on 2026-12-03, 300 alternating runs: `capexec run -- /bin/true`
//! 5.06 -> 4.78 ms (docs/performance.md).
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default().split(',').any(|f| f == "crt-static");
    // A static build links libgcc_eh already; other targets have other unwinders.
    if os == "linux" && env == "gnu" && !crt_static {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
    println!("cargo:rerun-if-changed=../../build/static-unwinder.rs");
}
