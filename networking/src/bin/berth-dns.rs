//! The DNS responder of one Berth network, as a process of its own (started detached by
//! `Networking::start_dns`). Arguments: see `berth_networking::dns::run_from_args`.

fn main() {
    if let Err(e) = berth_networking::dns::run_from_args(std::env::args_os().skip(1)) {
        eprintln!("berth-dns: {e}");
        std::process::exit(1);
    }
}
