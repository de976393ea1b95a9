//! An OCI bundle's config.json as berth-runtime reads it: parse, then the full
//! validation that runs before anything touches the host.
#![no_main]

use std::path::Path;

use berth_engine::runtime::spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = spec::parse(Path::new("config.json"), text) {
        let _ = spec::validate(&s);
    }
});
