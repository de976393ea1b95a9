//! Named fault points, for the fault tests (issue 8): when the environment variable
//! `BERTH_FAULT` names a point, the process kills itself there with SIGKILL — no
//! unwinding, no `Drop`, no flushing: what a crash, an OOM kill or a power cut of the
//! process leaves behind. Unset, a point costs one environment lookup.
//!
//! Every point's name is listed once, in `berth_orchestrator::fault::POINTS`; a test
//! there checks that the list and the `fault::point("...")` calls in the sources agree,
//! so a new point cannot be left out of the fault tests.

/// The variable that names the point to die at.
pub const VAR: &str = "BERTH_FAULT";

/// Dies here if `BERTH_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var_os(VAR).is_some_and(|v| v == name) {
        // SIGKILL cannot be caught: the whole process goes, whichever thread is here.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // raise() signals this thread; SIGKILL takes the process. Never get further.
        std::process::abort();
    }
}
