//! The DNS responder's input: a UDP payload from any container on the network, parsed,
//! answered from the stack's records, and the answer encoded.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use berth_networking::dns::{answer, Decision, Records};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fn records() -> &'static Records {
    static R: OnceLock<Records> = OnceLock::new();
    R.get_or_init(|| {
        Records::from_pairs([
            ("web", Ipv4Addr::new(10, 223, 0, 2)),
            ("db", Ipv4Addr::new(10, 223, 0, 3)),
            ("web.fuzz", Ipv4Addr::new(10, 223, 0, 2)),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Message::from_vec(data) else {
        return;
    };
    if let Decision::Answer(resp) = answer(&req, records()) {
        let _ = resp.to_vec();
    }
});
