//! berth-monitor: the per-container supervisor (see berth_engine::monitor). Started by
//! the engine, never by hand.

fn main() {
    berth_engine::monitor::main()
}
