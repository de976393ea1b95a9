//! Crash points for the crash-recovery tests: when `BERTH_NET_CRASH_AT` names a point, the
//! process kills itself there with SIGKILL (no unwinding, no Drop: what a real crash or an
//! OOM kill leaves behind). Unset, a point costs one environment lookup.

///
/// `BERTH_FAULT=net.NAME` (the variable the rest of Berth's fault points read, see
/// `berth_engine::fault`) names the same point.
pub(crate) fn point(name: &str) {
    let named = |var: &str, prefix: &str| {
        std::env::var(var).is_ok_and(|v| v.strip_prefix(prefix) == Some(name))
    };
    if named("BERTH_NET_CRASH_AT", "") || named("BERTH_FAULT", "net.") {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
