//! Service discovery on the real kernel: the responder process on the gateway answers
//! names of the stack, NXDOMAIN for unknown ones, and forwards the rest — here to a fake
//! upstream on 127.0.0.1 that the test runs, so no query ever leaves the machine.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use berth_networking::{AttachRequest, DnsOptions, HelperProgram, Netns, NetworkInfo};
use common::*;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};

fn ask(ns: &Netns, server: SocketAddr, name: &str, t: RecordType) -> Message {
    let name = name.to_string();
    ns.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut q = Message::new();
        q.set_id(4242)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(&name).unwrap(), t));
        s.send_to(&q.to_vec().unwrap(), server).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    })
    .unwrap()
}

fn ips(m: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn attach_named(env: &TestEnv, ns: &Netns, net: &NetworkInfo, names: &[&str]) -> Ipv4Addr {
    env.net
        .attach(
            ns,
            &[AttachRequest {
                network: net.name.clone(),
                dns_names: names.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }],
        )
        .unwrap()[0]
        .address
        .addr()
}

/// A stand-in for the host's resolver, on 127.0.0.1: answers every A query with
/// `answer`.
fn fake_upstream(port: u16, answer: Ipv4Addr) -> std::thread::JoinHandle<()> {
    let s = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response);
            for query in q.queries() {
                r.add_query(query.clone());
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(answer)),
                ));
            }
            let _ = s.send_to(&r.to_vec().unwrap(), from);
        }
    })
}

#[test]
fn names_resolve_through_the_responder_and_reach_by_name() {
    let env = TestEnv::new(30);
    let net = env.network("dns", 0, false);
    let upstream_port = env.port(5);
    let upstream_answer = Ipv4Addr::new(10, 213, 120, 200); // data only: never contacted
    let _up = fake_upstream(upstream_port, upstream_answer);
    let server = env
        .net
        .start_dns(
            &net.name,
            &DnsOptions {
                program: HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port))]),
            },
        )
        .unwrap();
    assert_eq!(server, SocketAddr::from((net.gateway, 53)));
    assert!(env.net.dns_running(&net.name));

    let web1 = env.netns("web1");
    let web2 = env.netns("web2");
    let db = env.netns("db");
    let ip1 = attach_named(&env, &web1, &net, &["web", "www", "proj-web-1"]);
    let ip2 = attach_named(&env, &web2, &net, &["web", "proj-web-2"]);
    let ipdb = attach_named(&env, &db, &net, &["db", "proj-db-1", "dbhost"]);

    // Every replica of a scaled service.
    let mut want = vec![ip1, ip2];
    want.sort();
    assert_eq!(ips(&ask(&db, server, "web", RecordType::A)), want);
    // Aliases, container names, hostnames, any case.
    assert_eq!(ips(&ask(&db, server, "WWW.", RecordType::A)), vec![ip1]);
    assert_eq!(
        ips(&ask(&web1, server, "proj-db-1", RecordType::A)),
        vec![ipdb]
    );
    assert_eq!(
        ips(&ask(&web1, server, "dbhost", RecordType::A)),
        vec![ipdb]
    );
    // AAAA of a known name: exists, no data.
    let r = ask(&web1, server, "db", RecordType::AAAA);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert!(r.answers().is_empty());
    // An unknown name of the stack.
    let r = ask(&web1, server, "nosuch", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    // Anything else goes upstream.
    let r = ask(&web1, server, "example.org", RecordType::A);
    assert_eq!(ips(&r), vec![upstream_answer]);

    // Reach by name: resolve, then connect.
    let _srv = Server::tcp(&db, 5432, "db here");
    let got = ips(&ask(&web1, server, "db", RecordType::A))[0];
    assert_eq!(
        tcp_get(Some(&web1), SocketAddr::from((got, 5432))).unwrap(),
        "db here"
    );

    // A detached replica drops out of the answers at once.
    env.net.detach(&web2, None).unwrap();
    assert_eq!(ips(&ask(&db, server, "web", RecordType::A)), vec![ip1]);

    // Removing the network stops the responder.
    env.net.detach(&web1, None).unwrap();
    env.net.detach(&db, None).unwrap();
    env.net.remove_network(&net.name).unwrap();
    assert!(!env.net.dns_running(&net.name));
    assert!(!env.net.config().run.join("helpers").exists());
}

#[test]
fn internal_networks_resolve_too() {
    let env = TestEnv::new(31);
    let net = env.network("idns", 0, true);
    let server = env
        .net
        .start_dns(
            &net.name,
            &DnsOptions {
                program: HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![]),
            },
        )
        .unwrap();
    let a = env.netns("a");
    let b = env.netns("b");
    let ia = attach_named(&env, &a, &net, &["api"]);
    attach_named(&env, &b, &net, &["worker"]);
    assert_eq!(ips(&ask(&b, server, "api", RecordType::A)), vec![ia]);
    // No upstream on an internal network: outside names fail, they are not leaked.
    let r = ask(&b, server, "example.org", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::ServFail);
}

#[test]
fn a_container_on_two_networks_resolves_names_of_both_and_others_do_not() {
    let env = TestEnv::new(32);
    let front = env.network("front", 0, false);
    let back = env.network("back", 1, false);
    let opts = DnsOptions {
        program: HelperProgram {
            program: env!("CARGO_BIN_EXE_berth-dns").into(),
            args: vec![],
        },
        upstreams: Some(vec![]),
    };
    let front_dns = env.net.start_dns(&front.name, &opts).unwrap();
    env.net.start_dns(&back.name, &opts).unwrap();
    let web = env.netns("web");
    let api = env.netns("api");
    let db = env.netns("db");
    let eths = env
        .net
        .attach(
            &web,
            &[
                AttachRequest {
                    network: front.name.clone(),
                    dns_names: vec!["web".into()],
                    ..Default::default()
                },
                AttachRequest {
                    network: back.name.clone(),
                    dns_names: vec!["web".into()],
                    ..Default::default()
                },
            ],
        )
        .unwrap();
    attach_named(&env, &api, &front, &["api"]);
    let ipdb = attach_named(&env, &db, &back, &["db"]);
    // web's resolv.conf names front's responder first; db is on back only, and web is on
    // both: the answer comes from front's responder all the same.
    assert_eq!(ips(&ask(&web, front_dns, "db", RecordType::A)), vec![ipdb]);
    // Its own name: the address on the network asked.
    assert_eq!(
        ips(&ask(&web, front_dns, "web", RecordType::A)),
        vec![eths[0].address.addr()]
    );
    // api shares no network with db: db does not exist for it.
    let r = ask(&api, front_dns, "db", RecordType::A);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert_eq!(
        ips(&ask(&api, front_dns, "web", RecordType::A)),
        vec![eths[0].address.addr()]
    );
}

fn ask_tcp(ns: &Netns, server: SocketAddr, name: &str) -> Message {
    use std::io::{Read, Write};
    let name = name.to_string();
    ns.run(move || {
        let mut s = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut q = Message::new();
        q.set_id(77)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(&name).unwrap(), RecordType::A));
        let b = q.to_vec().unwrap();
        s.write_all(&(b.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&b).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m).unwrap();
        Message::from_vec(&m).unwrap()
    })
    .unwrap()
}

/// A stand-in upstream over TCP on 127.0.0.1, answering every A query with `answer`.
fn fake_tcp_upstream(port: u16, answer: Ipv4Addr) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut m).unwrap();
            let q = Message::from_vec(&m).unwrap();
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response);
            for query in q.queries() {
                r.add_query(query.clone());
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(answer)),
                ));
            }
            let b = r.to_vec().unwrap();
            c.write_all(&(b.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&b).unwrap();
        }
    })
}

#[test]
fn the_responder_answers_over_tcp_too() {
    let env = TestEnv::new(33);
    let net = env.network("tcpdns", 0, false);
    let up_port = env.port(3);
    let up_answer = Ipv4Addr::new(10, 213, 132, 250); // data only: never contacted
    let up = fake_tcp_upstream(up_port, up_answer);
    let server = env
        .net
        .start_dns(
            &net.name,
            &DnsOptions {
                program: HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, up_port))]),
            },
        )
        .unwrap();
    let a = env.netns("a");
    let b = env.netns("b");
    let ia = attach_named(&env, &a, &net, &["alpha"]);
    attach_named(&env, &b, &net, &["beta"]);
    assert_eq!(ips(&ask_tcp(&b, server, "alpha")), vec![ia]);
    assert_eq!(
        ask_tcp(&b, server, "gamma").response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(ips(&ask_tcp(&b, server, "example.net")), vec![up_answer]);
    up.join().unwrap();
}

#[test]
fn a_port_53_published_on_every_address_leaves_the_gateways_to_the_responder() {
    let env = TestEnv::new(34);
    let net = env.network("dns53", 0, false);
    let (out, host_ip, _) = env.outside();
    let resolver = env.netns("resolver");
    let client = env.netns("client");
    attach_named(&env, &resolver, &net, &["resolver"]);
    let ic = attach_named(&env, &client, &net, &["client"]);
    let _srv = common::Server::udp(&resolver, 53, "not dns");
    // Published before the responder runs (later, the responder holding the gateway's
    // port 53 makes the host port look taken). Another test's responder may hold its own
    // gateway's port 53 for a moment: try again then.
    let mut tries = 0;
    loop {
        match env.net.publish(
            &resolver,
            &net.name,
            &[berth_networking::PortMapping::udp(53, 53)],
        ) {
            Ok(()) => break,
            Err(berth_networking::NetError::PortInUse { .. }) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let server = env
        .net
        .start_dns(
            &net.name,
            &DnsOptions {
                program: HelperProgram {
                    program: env!("CARGO_BIN_EXE_berth-dns").into(),
                    args: vec![],
                },
                upstreams: Some(vec![]),
            },
        )
        .unwrap();
    // Containers asking their gateway get the responder...
    assert_eq!(
        ips(&ask(&resolver, server, "client", RecordType::A)),
        vec![ic]
    );
    // ...while "another host" gets the published container on the host's address.
    assert_eq!(
        common::udp_get(Some(&out), SocketAddr::from((host_ip, 53))).unwrap(),
        "not dns"
    );
}
