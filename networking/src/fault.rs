//! Crash points for the crash-recovery tests: when `BERTH_NET_CRASH_AT` names a point, the
//! process kills itself there with SIGKILL (no unwinding, no Drop: what a real crash or an
//! OOM kill leaves behind). Unset, a point costs one environment lookup.

pub(crate) fn point(name: &str) {
    if std::env::var_os("BERTH_NET_CRASH_AT").is_some_and(|v| v == name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
