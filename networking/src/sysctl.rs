//! The two host sysctls networking needs, written through /proc (no `sysctl` binary).

use std::fs;

use crate::error::{NetError, Result};

fn write(path: &str, value: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).map_err(|e| NetError::io(format!("write {value} to {path}"), e))
}

/// The host forwards between the bridges and its other interfaces: needed for published
/// ports reached from outside and for the way out of non-internal networks (Docker sets
/// the same). The firewall keeps networks apart; forwarding alone opens nothing between
/// them.
pub(crate) fn enable_ip_forward() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Lets the kernel route packets with a 127.0.0.0/8 source out of `bridge`, which a
/// published port reached at 127.0.0.1 needs after DNAT (the firewall then masquerades
/// them to the gateway address, so no container ever sees a loopback source).
pub(crate) fn set_route_localnet(bridge: &str) -> Result<()> {
    write(
        &format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}
