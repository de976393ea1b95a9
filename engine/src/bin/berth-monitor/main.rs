//! berth-monitor: the per-container supervisor (see berth_engine::monitor). Started by
//! the engine, never by hand.

fn main() {
    // Also answers the embedded form (`berth-monitor __berth-monitor run ...`), which
    // is how the tests exercise `monitor::dispatch`.
    berth_engine::monitor::dispatch();
    berth_engine::monitor::main()
}
