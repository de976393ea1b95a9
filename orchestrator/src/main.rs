fn main() {
    std::process::exit(berth_orchestrator::cli::main());
}
