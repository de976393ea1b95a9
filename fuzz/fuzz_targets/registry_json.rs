//! What a registry sends: a manifest or an index (kind, parse, platform choice, digests)
//! and an image config.
#![no_main]

use berth_engine::image::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let declared = [
        None,
        Some(manifest::OCI_MANIFEST),
        Some(manifest::OCI_INDEX),
        Some(manifest::DOCKER_LIST),
    ];
    let which = data.first().copied().unwrap_or(0) as usize % declared.len();
    let body = data.get(1..).unwrap_or_default();
    match manifest::kind_of(body, declared[which]) {
        Ok((manifest::Kind::Manifest, _)) => {
            if let Ok(m) = manifest::parse_manifest(body) {
                let _ = manifest::descriptor_digest(m.config());
                for l in m.layers() {
                    let _ = manifest::descriptor_digest(l);
                }
            }
        }
        Ok((manifest::Kind::Index, _)) => {
            if let Ok(i) = manifest::parse_index(body) {
                if let Ok(d) = manifest::choose_platform(&i, "fuzz/image:latest") {
                    let _ = manifest::descriptor_digest(&d);
                }
            }
        }
        Err(_) => {}
    }
    let _ = manifest::parse_config(body);
});
