//! The image layer unpacker on an arbitrary tar stream: whatever it holds, nothing is
//! written outside the layer directory and nothing panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // /dev/shm keeps the per-input files off the disk.
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::Builder::new()
            .prefix("berth-fuzz-")
            .tempdir_in("/dev/shm")
    } else {
        tempfile::Builder::new().prefix("berth-fuzz-").tempdir()
    }
    .expect("temp dir");
    let root = base.path().join("layer");
    std::fs::create_dir(&root).expect("layer dir");
    let _ = berth_engine::image::unpack::unpack_into(data, &root, "fuzz");
    // Anything outside `root` but inside `base` would be an escape the unpacker let by.
    for e in std::fs::read_dir(base.path()).expect("read base").flatten() {
        assert_eq!(
            e.file_name(),
            "layer",
            "the unpacker wrote outside the layer"
        );
    }
});
