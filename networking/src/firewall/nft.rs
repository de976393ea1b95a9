//! nftables driver: rules in a table of Berth's own (`inet berth` by default), built as the
//! JSON API's typed values (the `nftables` crate) and applied by the `nft` binary, one
//! atomic transaction per call. Nothing outside that table is ever read or changed.
//!
//! Layout, per network with bridge `BR` (every chain a base chain of its own, so a
//! network's rules are added and removed as whole chains, never by rule handle):
//!
//! ```text
//! BR-raw   filter prerouting -300  ip saddr SUBNET ip daddr SUBNET (neither the gateway) notrack
//! BR-fwd   filter forward  0    iifname BR oifname BR accept                 (members, first)
//!                               not internal: ct status dnat accept          (published ports)
//!                               iifname BR oifname "berthbr*" oifname != BR drop   (isolation)
//!                               oifname BR iifname "berthbr*" iifname != BR drop
//!                               internal only: iifname BR oifname != BR drop; oifname BR iifname != BR drop
//! BR-post  nat postrouting 100  not internal: ip saddr SUBNET oifname != BR masquerade
//!                               not internal, IPv6: ip6 saddr SUBNET6 oifname != BR masquerade
//!                               not internal: ct status dnat ip saddr SUBNET oifname BR masquerade (hairpin)
//!                               ip saddr 127.0.0.0/8 oifname BR masquerade  (published ports via 127.0.0.1)
//! BR-in    filter input    0    iifname != BR return         (only what comes from this network)
//!                               ct state established,related accept  (replies to the host)
//!                               ct status dnat accept                (published ports)
//!                               meta l4proto icmp / ipv6-icmp accept (errors, ping, IPv6 ND)
//!                               ip daddr GATEWAY udp/tcp dport 53 accept (the DNS responder)
//!                               socket mark PROXY accept             (the userspace proxy's ports)
//!                               drop                                 (every other host service)
//! BR-KEY-pre  nat prerouting -100  [ip daddr HOST_IP | fib daddr type local] tcp dport P dnat to C:P'
//! BR-KEY-out  nat output     -100  same, for connections made on the host itself
//! ```
//! where KEY names one attachment (the host end of its veth pair).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, Socket, SocketAttr, CT,
};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Nftables as NftDoc, Rule, Table};
use nftables::stmt::{Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::{FirewallDriver, FirewallNetwork, PublishTarget};
use crate::error::{NetError, Result};
use crate::ports::{PortMapping, Protocol};
use crate::proxy::PROXY_SOCKET_MARK;

/// Rules in the nftables table `table` (family `inet`: one table for IPv4 and IPv6).
#[derive(Debug, Clone)]
pub struct Nftables {
    pub table: String,
}

impl Nftables {
    pub fn new(table: impl Into<String>) -> Self {
        Nftables {
            table: table.into(),
        }
    }

    fn table_obj(&self) -> Table<'static> {
        Table {
            family: NfFamily::INet,
            name: Cow::Owned(self.table.clone()),
            handle: None,
        }
    }

    fn chain(&self, name: &str) -> Chain<'static> {
        Chain {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            name: Cow::Owned(name.to_string()),
            ..Default::default()
        }
    }

    fn base_chain(&self, name: &str, kind: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
        Chain {
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..self.chain(name)
        }
    }

    fn rule(&self, chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
        NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            ..Default::default()
        })
    }

    /// (Re)creates `chain` with exactly `rules`: add (idempotent), flush, add rules.
    fn replace_chain(
        &self,
        batch: &mut Batch<'static>,
        chain: Chain<'static>,
        rules: Vec<Vec<Statement<'static>>>,
    ) {
        let name = chain.name.to_string();
        batch.add(NfListObject::Chain(chain));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain(&name))));
        for r in rules {
            batch.add(self.rule(&name, r));
        }
    }

    /// Applies `batch` under [`host_lock`]: the table is shared by every Berth root on
    /// the host.
    fn apply(&self, batch: Batch<'static>) -> Result<()> {
        let _host = host_lock()?;
        self.apply_locked(batch)
    }

    fn apply_locked(&self, batch: Batch<'static>) -> Result<()> {
        let mut doc = serde_json::to_value(batch.to_nftables()).expect("rules serialize");
        fix_unit_statements(&mut doc);
        helper::apply_ruleset_raw(&doc.to_string(), helper::DEFAULT_NFT, helper::DEFAULT_ARGS)
            .map(|_| ())
            .map_err(fw_err)
    }

    /// Names of this table's chains; none when the table does not exist.
    fn chains(&self) -> Result<Vec<String>> {
        let doc: NftDoc<'static> = match helper::get_current_ruleset_with_args(
            helper::DEFAULT_NFT,
            ["list", "table", "inet", self.table.as_str()],
        ) {
            Ok(doc) => doc,
            // `nft list table` of a table that is not there fails; that is "no chains".
            Err(NftablesError::NftFailed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(fw_err(e)),
        };
        Ok(doc
            .objects
            .iter()
            .filter_map(|o| match o {
                nftables::schema::NfObject::ListObject(NfListObject::Chain(c)) => {
                    Some(c.name.to_string())
                }
                _ => None,
            })
            .collect())
    }

    /// Deletes the chains whose names start with `prefix`, then the table if nothing is
    /// left in it. Listing and deleting happen under [`host_lock`]: the table is shared by
    /// every Berth root on the host, and another root adding its chains in between would
    /// otherwise lose them with the table.
    fn delete_chains(&self, prefix: &str) -> Result<()> {
        let _host = host_lock()?;
        let chains = self.chains()?;
        if chains.is_empty() {
            // No table, or an empty one (a crash between "add table" and "add chain").
            if self.table_exists()? {
                let mut b = Batch::new();
                b.delete(NfListObject::Table(self.table_obj()));
                return self.apply_locked(b);
            }
            return Ok(());
        }
        let doomed: Vec<&String> = chains.iter().filter(|c| c.starts_with(prefix)).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for c in &doomed {
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain(c))));
            batch.delete(NfListObject::Chain(self.chain(c)));
        }
        if doomed.len() == chains.len() {
            batch.delete(NfListObject::Table(self.table_obj()));
        }
        self.apply_locked(batch)
    }

    fn table_exists(&self) -> Result<bool> {
        let doc = helper::get_current_ruleset_with_args(helper::DEFAULT_NFT, ["list", "tables"])
            .map_err(fw_err)?;
        Ok(doc.objects.iter().any(|o| {
            matches!(o, nftables::schema::NfObject::ListObject(NfListObject::Table(t))
                if t.family == NfFamily::INet && t.name == self.table)
        }))
    }
}

/// The crate serializes statements without arguments (`notrack`) as bare strings, which
/// `nft -j` refuses ("expected object"); nft wants `{"notrack": null}`.
fn fix_unit_statements(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "expr" {
                    if let serde_json::Value::Array(stmts) = child {
                        for st in stmts.iter_mut() {
                            if let serde_json::Value::String(name) = st {
                                let mut o = serde_json::Map::new();
                                o.insert(name.clone(), serde_json::Value::Null);
                                *st = serde_json::Value::Object(o);
                            }
                        }
                    }
                }
                fix_unit_statements(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(fix_unit_statements),
        _ => {}
    }
}

fn fw_err(e: NftablesError) -> NetError {
    NetError::Firewall(e.to_string())
}

// ------------------------------------------------------------- expression helpers

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn field(protocol: &'static str, name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(name),
        },
    )))
}

fn prefix(net: ipnet::Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn prefix6(net: ipnet::Ipv6Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn is(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn is_not(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

/// Every Berth bridge (all share the prefix; see `names`).
const ANY_BRIDGE: &str = "berthbr*";

/// Container-to-container traffic inside one network is only bridged, yet hosts with
/// `br_netfilter` (Docker's hosts among them) send every bridged packet through
/// conntrack. Nothing of Berth's needs that state (isolation is stateless, NAT concerns
/// only traffic to or from outside the subnet, or to the gateway), so it is skipped:
/// measurably more throughput between containers.
///
/// First, though: `route_localnet` (needed on the bridge for ports published on
/// 127.0.0.1) would also let a container send to the host's loopback services by
/// addressing 127.0.0.0/8 to the gateway's MAC. Nothing legitimate arrives from a bridge
/// with a loopback address (answers to masqueraded loopback connections are addressed to
/// the gateway until conntrack rewrites them, after this hook), so it is dropped here.
fn raw_rules(net: &FirewallNetwork<'_>) -> Vec<Vec<Statement<'static>>> {
    let gw = net.gateway.to_string();
    let br = net.bridge.to_string();
    let loopback = || prefix("127.0.0.0/8".parse().expect("literal"));
    let mut rules = vec![
        vec![
            is(meta(MetaKey::Iifname), s(&br)),
            is(field("ip", "daddr"), loopback()),
            drop(),
        ],
        vec![
            is(meta(MetaKey::Iifname), s(&br)),
            is(field("ip", "saddr"), loopback()),
            drop(),
        ],
        vec![
            is(field("ip", "saddr"), prefix(net.subnet)),
            is(field("ip", "daddr"), prefix(net.subnet)),
            is_not(field("ip", "saddr"), s(&gw)),
            is_not(field("ip", "daddr"), s(&gw)),
            Statement::Notrack,
        ],
    ];
    if let (Some(s6), Some(g6)) = (net.subnet6, net.gateway6) {
        let g6 = g6.to_string();
        rules.push(vec![
            is(field("ip6", "saddr"), prefix6(s6)),
            is(field("ip6", "daddr"), prefix6(s6)),
            is_not(field("ip6", "saddr"), s(&g6)),
            is_not(field("ip6", "daddr"), s(&g6)),
            Statement::Notrack,
        ]);
    }
    rules
}

fn network_rules(
    net: &FirewallNetwork<'_>,
) -> (Vec<Vec<Statement<'static>>>, Vec<Vec<Statement<'static>>>) {
    let br = net.bridge.to_string();
    // Traffic between two members of the network (bridged, seen here on hosts with
    // br_netfilter) is allowed whatever else holds: accepted first, it walks one rule
    // of this chain instead of all of them.
    let mut fwd = vec![vec![
        is(meta(MetaKey::Iifname), s(&br)),
        is(meta(MetaKey::Oifname), s(&br)),
        Statement::Accept(None),
    ]];
    if !net.internal {
        // A published port is open to every network that may go out, as to other hosts:
        // connections DNATed by Berth pass the isolation below (both directions, as
        // conntrack marks the whole connection).
        fwd.push(vec![
            Statement::Match(Match {
                left: ct("status"),
                right: s("dnat"),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ]);
    }
    fwd.extend([
        // No traffic between two different Berth networks, in either direction (the other
        // network's table may belong to another Berth root).
        vec![
            is(meta(MetaKey::Iifname), s(&br)),
            is(meta(MetaKey::Oifname), s(ANY_BRIDGE)),
            is_not(meta(MetaKey::Oifname), s(&br)),
            drop(),
        ],
        vec![
            is(meta(MetaKey::Oifname), s(&br)),
            is(meta(MetaKey::Iifname), s(ANY_BRIDGE)),
            is_not(meta(MetaKey::Iifname), s(&br)),
            drop(),
        ],
    ]);
    let mut post = Vec::new();
    if net.internal {
        // No way out, no way in: only traffic between the network's own members.
        fwd.push(vec![
            is(meta(MetaKey::Iifname), s(&br)),
            is_not(meta(MetaKey::Oifname), s(&br)),
            drop(),
        ]);
        fwd.push(vec![
            is(meta(MetaKey::Oifname), s(&br)),
            is_not(meta(MetaKey::Iifname), s(&br)),
            drop(),
        ]);
    } else {
        post.push(vec![
            is(field("ip", "saddr"), prefix(net.subnet)),
            is_not(meta(MetaKey::Oifname), s(&br)),
            masquerade(),
        ]);
        if let Some(s6) = net.subnet6 {
            post.push(vec![
                is(field("ip6", "saddr"), prefix6(s6)),
                is_not(meta(MetaKey::Oifname), s(&br)),
                masquerade(),
            ]);
        }
        // Hairpin: a member reaching a published port of its own network through a host
        // address. Without this the answer would go straight back over the bridge, from
        // an address the client never talked to.
        post.push(vec![
            Statement::Match(Match {
                left: ct("status"),
                right: s("dnat"),
                op: Operator::IN,
            }),
            is(field("ip", "saddr"), prefix(net.subnet)),
            is(meta(MetaKey::Oifname), s(&br)),
            masquerade(),
        ]);
    }
    // A published port reached at 127.0.0.1 arrives with a loopback source, which the
    // container could not answer: give it the gateway's address instead.
    post.push(vec![
        is(
            field("ip", "saddr"),
            prefix("127.0.0.0/8".parse().expect("literal")),
        ),
        is(meta(MetaKey::Oifname), s(&br)),
        masquerade(),
    ]);
    (fwd, post)
}

/// What a member of the network may send to the host itself: replies, ICMP, DNS
/// queries to its gateway (the network's responder), published ports (DNATed, or served
/// by the userspace proxy, whose listening sockets carry [`PROXY_SOCKET_MARK`]). Any
/// other host service, on the gateway address or any other address of the host, is out
/// of reach, as if not published (Docker's bridge lets containers in there; a container
/// is not to reach what the host did not publish). Same for `internal` networks and for
/// privileged containers: privilege is about the container's own kernel objects, not
/// the host's network.
fn input_rules(net: &FirewallNetwork<'_>) -> Vec<Vec<Statement<'static>>> {
    let br = net.bridge.to_string();
    let gw = net.gateway.to_string();
    let in_set = |key, items: &[&str]| {
        Statement::Match(Match {
            left: ct(key),
            right: Expression::List(items.iter().map(|i| s(*i)).collect()),
            op: Operator::IN,
        })
    };
    let accept = || Statement::Accept(None);
    let mut rules = vec![
        vec![
            is_not(meta(MetaKey::Iifname), s(&br)),
            Statement::Return(None),
        ],
        vec![in_set("state", &["established", "related"]), accept()],
        vec![in_set("status", &["dnat"]), accept()],
        vec![is(meta(MetaKey::L4proto), s("icmp")), accept()],
        vec![is(meta(MetaKey::L4proto), s("ipv6-icmp")), accept()],
    ];
    for proto in ["udp", "tcp"] {
        rules.push(vec![
            is(field("ip", "daddr"), s(&gw)),
            is(field(proto, "dport"), Expression::Number(53)),
            accept(),
        ]);
    }
    rules.push(vec![
        is(
            Expression::Named(NamedExpression::Socket(Socket {
                key: Cow::Borrowed(&SocketAttr::Mark),
            })),
            Expression::Number(PROXY_SOCKET_MARK),
        ),
        accept(),
    ]);
    rules.push(vec![drop()]);
    rules
}

fn dnat_rules(target: &PublishTarget, ports: &[PortMapping]) -> Vec<Vec<Statement<'static>>> {
    let mut rules = Vec::new();
    for p in ports {
        let proto = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let dport = || {
            is(
                field(proto, "dport"),
                Expression::Number(u32::from(p.host_port)),
            )
        };
        let dnat = |addr: String, family: NATFamily| {
            Statement::DNAT(Some(NAT {
                addr: Some(s(addr)),
                // An inet table: say which family the address is.
                family: Some(family),
                port: Some(Expression::Number(u32::from(p.container_port))),
                flags: None,
            }))
        };
        let local = || {
            is(
                Expression::Named(NamedExpression::Fib(Fib {
                    result: FibResult::Type,
                    flags: HashSet::from([FibFlag::Daddr]),
                })),
                s("local"),
            )
        };
        match p.host_ip {
            Some(IpAddr::V4(ip)) => rules.push(vec![
                is(field("ip", "daddr"), s(ip.to_string())),
                dport(),
                dnat(target.v4.to_string(), NATFamily::IP),
            ]),
            Some(IpAddr::V6(ip)) => {
                if let Some(v6) = target.v6 {
                    rules.push(vec![
                        is(field("ip6", "daddr"), s(ip.to_string())),
                        dport(),
                        dnat(v6.to_string(), NATFamily::IP6),
                    ]);
                }
            }
            None => {
                // Host port 53 on every address would also take the DNS queries that
                // containers send to their gateways (host addresses too): whatever comes
                // from a Berth bridge is left to the responders.
                let not_from_bridges = || is_not(meta(MetaKey::Iifname), s(ANY_BRIDGE));
                let mut r4 = vec![is(meta(MetaKey::Nfproto), s("ipv4")), local()];
                if p.host_port == 53 {
                    r4.push(not_from_bridges());
                }
                r4.extend([dport(), dnat(target.v4.to_string(), NATFamily::IP)]);
                rules.push(r4);
                if let Some(v6) = target.v6 {
                    // Not ::1: IPv6 has no route_localnet, loopback cannot leave the host.
                    let mut r6 = vec![
                        is(meta(MetaKey::Nfproto), s("ipv6")),
                        local(),
                        is_not(field("ip6", "daddr"), s("::1")),
                    ];
                    if p.host_port == 53 {
                        r6.push(not_from_bridges());
                    }
                    r6.extend([dport(), dnat(v6.to_string(), NATFamily::IP6)]);
                    rules.push(r6);
                }
            }
        }
    }
    rules
}

impl FirewallDriver for Nftables {
    fn setup_network(&self, net: &FirewallNetwork<'_>) -> Result<()> {
        let (fwd, post) = network_rules(net);
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(self.table_obj()));
        let br = net.bridge;
        self.replace_chain(
            &mut batch,
            self.base_chain(
                &format!("{br}-raw"),
                NfChainType::Filter,
                NfHook::Prerouting,
                -300,
            ),
            raw_rules(net),
        );
        self.replace_chain(
            &mut batch,
            self.base_chain(
                &format!("{br}-fwd"),
                NfChainType::Filter,
                NfHook::Forward,
                0,
            ),
            fwd,
        );
        self.replace_chain(
            &mut batch,
            self.base_chain(&format!("{br}-in"), NfChainType::Filter, NfHook::Input, 0),
            input_rules(net),
        );
        self.replace_chain(
            &mut batch,
            self.base_chain(
                &format!("{br}-post"),
                NfChainType::NAT,
                NfHook::Postrouting,
                100,
            ),
            post,
        );
        self.apply(batch)
    }

    fn teardown_network(&self, net: &FirewallNetwork<'_>) -> Result<()> {
        self.delete_chains(&format!("{}-", net.bridge))
    }

    fn publish(
        &self,
        net: &FirewallNetwork<'_>,
        key: &str,
        container: &PublishTarget,
        ports: &[PortMapping],
    ) -> Result<()> {
        let rules = dnat_rules(container, ports);
        let br = net.bridge;
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(self.table_obj()));
        self.replace_chain(
            &mut batch,
            self.base_chain(
                &format!("{br}-{key}-pre"),
                NfChainType::NAT,
                NfHook::Prerouting,
                -100,
            ),
            rules.clone(),
        );
        self.replace_chain(
            &mut batch,
            self.base_chain(
                &format!("{br}-{key}-out"),
                NfChainType::NAT,
                NfHook::Output,
                -100,
            ),
            rules,
        );
        self.apply(batch)
    }

    fn unpublish(&self, net: &FirewallNetwork<'_>, key: &str) -> Result<()> {
        self.delete_chains(&format!("{}-{key}-", net.bridge))
    }
}

/// The host-wide lock on Berth's nftables table. Each root's state lock covers only that
/// root; the table is one for the whole host (tests and users may run several roots).
fn host_lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = std::path::Path::new("/run/lock");
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join("berth-nftables.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| crate::NetError::io(format!("open {}", path.display()), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| crate::NetError::io(format!("lock {}", path.display()), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_serialize_to_the_json_nft_expects() {
        let net = FirewallNetwork {
            name: "n",
            bridge: "berthbr00000001",
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            subnet6: None,
            gateway6: None,
            internal: false,
        };
        let (fwd, post) = network_rules(&net);
        assert_eq!(fwd.len(), 4);
        let first = serde_json::to_string(&fwd[0]).unwrap();
        assert!(
            first.contains("iifname") && first.contains("oifname") && first.contains("accept"),
            "members accepted first: {first}"
        );
        assert_eq!(post.len(), 3);
        let j = serde_json::to_string(&post[0]).unwrap();
        assert!(
            j.contains(r#""prefix":{"addr":"10.9.0.0","len":24}"#),
            "{j}"
        );
        assert!(j.contains("masquerade"), "{j}");
        let internal = FirewallNetwork {
            internal: true,
            ..net
        };
        let (fwd, post) = network_rules(&internal);
        assert_eq!(fwd.len(), 5, "no accept for published ports");
        assert_eq!(post.len(), 1, "no masquerade out of an internal network");
        let target = PublishTarget {
            v4: "10.9.0.2".parse().unwrap(),
            v6: Some("fd00:9::2".parse().unwrap()),
        };
        let d = dnat_rules(&target, &[PortMapping::udp(5353, 53)]);
        assert_eq!(d.len(), 2, "IPv4 and IPv6");
        let j6 = serde_json::to_string(&d[1]).unwrap();
        assert!(
            j6.contains(r#""dnat":{"addr":"fd00:9::2","family":"ip6","port":53}"#),
            "{j6}"
        );
        let j = serde_json::to_string(&d[0]).unwrap();
        assert!(
            j.contains(r#""dnat":{"addr":"10.9.0.2","family":"ip","port":53}"#),
            "{j}"
        );
        assert!(j.contains(r#""protocol":"udp","field":"dport""#), "{j}");
    }
}
