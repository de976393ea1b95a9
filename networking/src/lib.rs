//! berth-networking: network namespaces, bridges, veth pairs, IPAM, firewall and DNS.
//! See DESIGN.md, "networking". Grows with the networking issue.
