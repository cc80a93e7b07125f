//! A small authoritative DNS server on 127.0.0.1 (UDP), speaking the real wire format via
//! hickory-proto: answers A queries for one name with a fixed set of addresses, NXDOMAIN
//! for anything else. Stops when dropped.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub struct DnsServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl DnsServer {
    pub fn start(name: &str, addrs: Vec<Ipv4Addr>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let name = Name::from_ascii(if name.ends_with('.') { name.to_string() } else { format!("{name}.") }).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
                let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
                let Some(q) = query.queries.first().cloned() else { continue };
                let matches = q.name().to_lowercase() == name.to_lowercase();
                let mut reply = if matches {
                    Message::response(query.metadata.id, query.metadata.op_code)
                } else {
                    Message::error_msg(query.metadata.id, query.metadata.op_code, ResponseCode::NXDomain)
                };
                reply.metadata.authoritative = true;
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                reply.add_query(q.clone());
                if matches && q.query_type() == RecordType::A {
                    for ip in &addrs {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(*ip))));
                    }
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        DnsServer { port, stop }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
