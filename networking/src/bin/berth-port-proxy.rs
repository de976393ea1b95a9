//! The userspace port proxy of one attachment, as a process of its own (started detached
//! by `Networking::publish` when published ports go through userspace). Arguments: see
//! `berth_networking::proxy::run_from_args`.

fn main() {
    if let Err(e) = berth_networking::proxy::run_from_args(std::env::args_os().skip(1)) {
        eprintln!("berth-port-proxy: {e}");
        std::process::exit(1);
    }
}
