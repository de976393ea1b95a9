//! Named fault points (issue 8): `BERTH_FAULT=NAME berth up` dies by SIGKILL at the
//! point called NAME (see `berth_engine::fault`). This is the one list of every point
//! the fault tests (orchestrator/tests/faults.rs) run through; the unit test below
//! checks it against the `fault::point("...")` calls in the engine, networking and
//! orchestrator sources, so a point added there and not here fails the build's tests.

pub use berth_engine::fault::{point, VAR};

/// Which command passes a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `berth up` (with the fault tests' stack: a named volume, a published port, a
    /// healthcheck and a `depends_on: service_healthy`).
    Up,
    /// `berth down` of a stack that is up.
    Down,
    /// `berth image pull` from a registry (a layer fetched and unpacked).
    Pull,
}

/// Every fault point, in the order a run passes them.
pub const POINTS: &[(&str, Stage)] = &[
    ("up.after-lock", Stage::Up),
    ("up.after-observe", Stage::Up),
    ("net.ensure-after-record", Stage::Up),
    ("net.ensure-after-bridge", Stage::Up),
    ("up.after-network", Stage::Up),
    ("net.helper-after-spawn", Stage::Up),
    ("up.after-dns", Stage::Up),
    ("up.after-volume", Stage::Up),
    ("up.after-resources", Stage::Up),
    ("up.after-rootfs", Stage::Up),
    ("up.after-netns", Stage::Up),
    ("net.attach-after-lease", Stage::Up),
    ("net.attach-after-veth", Stage::Up),
    ("up.after-attach", Stage::Up),
    ("up.after-publish", Stage::Up),
    ("up.after-etc", Stage::Up),
    ("up.after-create", Stage::Up),
    ("up.after-start", Stage::Up),
    ("up.after-dependency", Stage::Up),
    ("down.after-lock", Stage::Down),
    ("down.after-stop", Stage::Down),
    ("down.after-remove", Stage::Down),
    ("net.release-after-netns", Stage::Down),
    ("down.after-detach", Stage::Down),
    ("down.after-rootfs", Stage::Down),
    ("down.after-containers", Stage::Down),
    ("down.after-network", Stage::Down),
    ("pull.after-manifest", Stage::Pull),
    ("pull.mid-blob", Stage::Pull),
    ("pull.after-blob", Stage::Pull),
    ("unpack.mid-layer", Stage::Pull),
    ("unpack.before-rename", Stage::Pull),
    ("pull.before-record", Stage::Pull),
];

/// The points a stage passes.
pub fn points(stage: Stage) -> impl Iterator<Item = &'static str> {
    POINTS
        .iter()
        .filter(move |(_, s)| *s == stage)
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// `fault::point("NAME")` calls in a crate's sources; networking's read `net.NAME`.
    fn calls(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                calls(&p, prefix, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("fault.rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split("fault::point(\"").skip(1) {
                    let name = piece.split('"').next().unwrap();
                    out.insert(format!("{prefix}{name}"));
                }
            }
        }
    }

    #[test]
    fn the_list_names_every_point_in_the_sources_and_no_other() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut found = BTreeSet::new();
        calls(&ws.join("orchestrator/src"), "", &mut found);
        calls(&ws.join("engine/src"), "", &mut found);
        calls(&ws.join("networking/src"), "net.", &mut found);
        let listed: BTreeSet<String> = POINTS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(listed.len(), POINTS.len(), "a point is listed twice");
        assert_eq!(
            found, listed,
            "fault points in the sources vs fault::POINTS"
        );
    }
}
