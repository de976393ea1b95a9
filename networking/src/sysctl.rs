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

/// The same for IPv6. Note: with forwarding on, the kernel stops taking router
/// advertisements on interfaces with `accept_ra=1` (Docker does the same with IPv6
/// networks); hosts configured by SLAAC want `accept_ra=2` on their uplink.
pub(crate) fn enable_ip6_forward() -> Result<()> {
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

/// No duplicate address detection on `bridge` (see the caller); nothing to do where IPv6
/// is disabled.
pub(crate) fn disable_dad(bridge: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{bridge}/accept_dad");
    if !std::path::Path::new(&path).exists() {
        return Ok(());
    }
    write(&path, "0")
}
