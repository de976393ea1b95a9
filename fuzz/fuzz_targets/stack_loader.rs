//! The stack loader on arbitrary text, as `berth config -f -` reads it: parse,
//! interpolate, merge, extends, validate; what loads must also print.
#![no_main]

use std::path::PathBuf;

use berth_orchestrator::stack::{self, Options};
use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = Options {
        files: vec![PathBuf::from("-")],
        stdin: Some(text.to_string()),
        project_name: Some("fuzz".into()),
        environment: Some(IndexMap::from([("SET".to_string(), "value".to_string())])),
        ..Options::default()
    };
    if let Ok(loaded) = stack::load(&opts) {
        let _ = stack::config::render(&loaded, stack::config::Format::Yaml);
    }
});
