//! Framing through the real stack, split at every byte boundary.

use std::vec::Vec;

use tcpool_core::framing::Prefix;
use tcpool_core::{CloseReason, Config};

use super::assert_all_closed;
use crate::drive::{Peer, start, wait_for};
use crate::handlers::{Mode, Recorder};
use crate::harness::Harness;
use crate::kind::{Kind, RecDrive};
use crate::pattern::Pattern;

/// Sends `input` in two writes split at every offset, each on its own
/// connection; the second write waits until the server has received the
/// first, so the handler really sees it in two pieces. Checks the reply and
/// the messages the handler recorded.
fn split_everywhere<H: Harness, D: RecDrive<H::Stack>>(
    h: &mut H,
    server: &mut D,
    scenario: &str,
    input: &[u8],
    reply: &[u8],
    messages: &[Vec<u8>],
) {
    let b = H::BACKEND;
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let mut c = Peer::connect(h, server, format!("split at {split}"));
        let addr = c.addr(h);
        let before = server.stats().bytes_in;
        if !first.is_empty() {
            c.send_all(h, server, first);
            let want = before + first.len() as u64;
            wait_for(h, server, "the first part to reach the server", |_, s| {
                s.stats().bytes_in >= want
            });
        }
        c.send_all(h, server, second);
        c.wait_bytes(h, server, reply.len() as u64);
        assert!(
            c.got == reply,
            "[{b}] {scenario}: split at {split}: reply {:?}, want {:?}",
            String::from_utf8_lossy(&c.got),
            String::from_utf8_lossy(reply)
        );
        c.shutdown_write(h);
        c.wait_end(h, server);
        assert!(c.eof, "[{b}] {scenario}: split at {split}: FIN");
        c.close(h);
        wait_for(h, server, "the connection to be released", |_, s| {
            s.active() == 0
        });
        let rec = server.handler().by_peer(addr).expect("recorded");
        assert_eq!(
            rec.messages, messages,
            "[{b}] {scenario}: split at {split}: messages the handler saw"
        );
        assert_eq!(rec.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
}

/// Lines (LF and CRLF terminated, empty ones included) sent in two writes
/// split at every byte offset come out as the same lines, each answered.
pub fn framing_lines_split_at_every_byte_boundary<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let scenario = "framing_lines_split_at_every_byte_boundary";
    let input: &[u8] = b"alpha\r\nbeta\n\ngamma-delta\nPING with spaces\r\n\r\nlast\n";
    let lines: Vec<Vec<u8>> = [
        &b"alpha"[..],
        b"beta",
        b"",
        b"gamma-delta",
        b"PING with spaces",
        b"",
        b"last",
    ]
    .iter()
    .map(|l| l.to_vec())
    .collect();
    let mut reply = Vec::new();
    for l in &lines {
        reply.extend_from_slice(l);
        reply.push(b'\n');
    }
    let mut server =
        start::<H, K, 2, 128, 128>(h, Recorder::new(Mode::Lines { max: 64 }), Config::new());
    split_everywhere(h, &mut server, scenario, input, &reply, &lines);
    assert_all_closed(h, &mut server, scenario);
}

/// Length-prefixed frames (empty, one byte, short, and one over 255 bytes,
/// so both header bytes matter) sent in two writes split at every byte
/// offset come out as the same frames, each echoed.
pub fn framing_length_prefix_split_at_every_byte_boundary<H: Harness, K: Kind<H::Stack>>(
    h: &mut H,
) {
    let scenario = "framing_length_prefix_split_at_every_byte_boundary";
    let payloads: Vec<Vec<u8>> = std::vec![
        Vec::new(),
        b"a".to_vec(),
        b"hello".to_vec(),
        Pattern::new(9).bytes(0, 300),
        b"\n\r".to_vec(),
    ];
    let mut input = Vec::new();
    for p in &payloads {
        let mut header = [0u8; 4];
        let n = Prefix::U16Be.encode(p.len(), &mut header).expect("fits");
        input.extend_from_slice(&header[..n]);
        input.extend_from_slice(p);
    }
    let mut server = start::<H, K, 2, 512, 512>(
        h,
        Recorder::new(Mode::Frames {
            prefix: Prefix::U16Be,
            max: 400,
        }),
        Config::new(),
    );
    let reply = input.clone();
    split_everywhere(h, &mut server, scenario, &input, &reply, &payloads);
    assert_all_closed(h, &mut server, scenario);
}
