//! Links berth-monitor as a position-dependent executable: its relocations are then
//! resolved at link time instead of dirtying ~270 KiB of private pages in every
//! monitor at start (one monitor runs per container, so that is paid 100 times).
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-monitor=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
