//! How connections end: half-close, graceful close, timeouts, bad input,
//! resets.

use core::time::Duration;
use std::vec::Vec;

use tcpool_core::framing::Prefix;
use tcpool_core::{CloseReason, Config, SlotState};

use super::assert_all_closed;
use crate::drive::{Bound, Peer, note, start, wait_for};
use crate::handlers::{Mode, Recorder};
use crate::harness::Harness;
use crate::kind::{Kind, RecDrive};
use crate::pattern::Pattern;

/// A client half-closes right after sending: every byte it sent reaches
/// the handler before `on_peer_closed`, and the reply (the echo, then a
/// trailer written after the peer's FIN) still reaches the client before
/// the server's FIN. Done twice: a small message whose data and FIN arrive
/// before the server reads anything (seed 001), and 64 KiB through 256-byte
/// buffers, so the half-close happens with output backed up.
pub fn peer_half_close_delivers_all_data_and_reply_is_still_sent<H: Harness, K: Kind<H::Stack>>(
    h: &mut H,
) {
    let b = H::BACKEND;
    let mut server = start::<H, K, 4, 256, 256>(
        h,
        Recorder::new(Mode::Echo).with_trailer(b"BYE\n"),
        Config::new(),
    );
    for (name, len) in [("small", 100usize), ("large", 64 * 1024)] {
        let data = Pattern::new(len as u64).bytes(0, len);
        let mut c = Peer::connect(h, &mut server, format!("{name} client"));
        let addr = c.addr(h);
        if len <= 100 {
            // Data and FIN before the server runs again.
            let mut sent = 0;
            let mut bound = Bound::new(h, "the small message to be taken");
            while sent < data.len() {
                sent += c.try_send(h, &data[sent..]);
                if sent < data.len() {
                    h.step(&mut server);
                    bound.tick(h, &server);
                }
            }
        } else {
            c.send_all(h, &mut server, &data);
        }
        c.shutdown_write(h);
        c.wait_end(h, &mut server);
        assert!(
            c.eof && !c.reset,
            "[{b}] {name}: the server's close is a FIN"
        );
        let mut want = data.clone();
        want.extend_from_slice(b"BYE\n");
        assert_eq!(c.got.len(), want.len(), "[{b}] {name}: reply length");
        assert!(
            c.got == want,
            "[{b}] {name}: reply differs from data + trailer"
        );
        c.close(h);
        wait_for(
            h,
            &mut server,
            "the half-closed connection to end",
            |_, s| s.active() == 0,
        );
        let rec = server.handler().by_peer(addr).expect("recorded");
        assert!(
            rec.data == data,
            "[{b}] {name}: the handler saw other bytes than were sent"
        );
        assert_eq!(
            rec.peer_closed_after,
            Some(len as u64),
            "[{b}] {name}: on_peer_closed must come after every byte"
        );
        assert_eq!(rec.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
    assert_all_closed(
        h,
        &mut server,
        "peer_half_close_delivers_all_data_and_reply_is_still_sent",
    );
}

/// The handler streams a large response and closes as soon as the last
/// byte is queued, while the client reads slowly: the client gets every
/// byte, in order, and then a FIN (not a reset); the close is counted as
/// `local` and the linger time was not needed.
pub fn graceful_close_sends_pending_output_before_eof<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "graceful_close_sends_pending_output_before_eof";
    let total = h.transfer_size().bytes.min(8 * 1024 * 1024) as u64;
    let config = Config::new().with_linger(Duration::from_secs(60));
    let mut server = start::<H, K, 2, 256, 1024>(h, Recorder::new(Mode::Lines { max: 64 }), config);
    let mut c = Peer::connect(h, &mut server, "reader");
    c.keep = false;
    let addr = c.addr(h);
    c.send_all(h, &mut server, format!("SEND {total} 7\n").as_bytes());
    let pattern = Pattern::new(7);
    let mut buf = std::vec![0u8; 64 * 1024];
    let mut saw_closing_with_output = false;
    let mut bound = Bound::new(h, format!("{total} streamed bytes and the FIN"));
    // Let the server fill every buffer before reading anything.
    for _ in 0..20 {
        h.step(&mut server);
    }
    loop {
        let closing = server
            .slot_states()
            .any(|s| matches!(s, SlotState::Closing { .. }));
        if closing && c.received < total {
            saw_closing_with_output = true;
        }
        // A slow reader: at most 16 KiB per step, and near the end of the
        // stream 1000 bytes (a size that divides no buffer), so the last
        // write usually finds the stack full and stays pending at close.
        let tail = server.stats().bytes_out + 128 * 1024 >= total;
        let want = if tail { 1000 } else { 16 * 1024 };
        let client = c.client.as_mut().expect("open");
        match h.recv(client, &mut buf[..want]) {
            crate::Recv::Data(n) => {
                if let Err(at) = pattern.check(c.received, &buf[..n]) {
                    panic!("[{b}] {scenario}: wrong byte at stream offset {at}");
                }
                c.received += n as u64;
                bound.progress();
            }
            crate::Recv::WouldBlock => {}
            crate::Recv::Eof => {
                c.eof = true;
                break;
            }
            crate::Recv::Reset => panic!(
                "[{b}] {scenario}: reset after {} of {total} bytes: pending output destroyed",
                c.received
            ),
        }
        assert!(
            c.received <= total,
            "[{b}] {scenario}: more bytes than were sent"
        );
        h.step(&mut server);
        bound.tick(h, &server);
    }
    assert_eq!(
        c.received, total,
        "[{b}] {scenario}: EOF before every byte arrived"
    );
    c.close(h);
    wait_for(h, &mut server, "the connection to be released", |_, s| {
        s.active() == 0
    });
    let rec = server.handler().by_peer(addr).expect("recorded");
    let pending = rec
        .pending_at_close
        .expect("the handler closed after the stream");
    assert!(
        pending > 0,
        "[{b}] {scenario}: output was pending when close was asked"
    );
    let closed = rec.closed.expect("closed");
    assert_eq!(
        closed.reason,
        CloseReason::Local,
        "[{b}] {scenario}: reason"
    );
    assert_eq!(closed.bytes_out, total, "[{b}] {scenario}: bytes_out");
    assert_eq!(
        server.stats().linger_expired,
        0,
        "[{b}] {scenario}: linger expired"
    );
    if !saw_closing_with_output {
        note::<H>(
            scenario,
            "the slot was never seen in Closing with output left (the stack took the last \
             output at once); the close-with-pending-output path was not exercised this run",
        );
    }
    assert_all_closed(h, &mut server, scenario);
}

/// A client that goes silent is closed after the idle timeout (not
/// before), with reason `idle_timeout` and a FIN; the freed slot serves the
/// client that waited for it, which is then timed out in turn.
pub fn idle_timeout_closes_and_slot_is_reused<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let timeout = Duration::from_millis(300);
    let config = Config::new().with_idle_timeout(Some(timeout));
    let mut server = start::<H, K, 1, 256, 256>(h, Recorder::new(Mode::Echo), config);
    let mut silent = Peer::connect(h, &mut server, "silent client");
    let silent_addr = silent.addr(h);
    silent.send_all(h, &mut server, b"ping");
    silent.wait_bytes(h, &mut server, 4);
    let mut next = Peer::connect(h, &mut server, "waiting client");
    let next_addr = next.addr(h);
    next.send_all(h, &mut server, b"late");
    silent.wait_end(h, &mut server);
    assert!(silent.eof && !silent.reset, "[{b}] the idle close is a FIN");
    silent.close(h);
    next.wait_bytes(h, &mut server, 4);
    assert_eq!(
        next.got, b"late",
        "[{b}] the waiting client is served in the freed slot"
    );
    next.wait_end(h, &mut server);
    assert!(next.eof, "[{b}] the second client is timed out too");
    next.close(h);
    assert_all_closed(h, &mut server, "idle_timeout_closes_and_slot_is_reused");
    for addr in [silent_addr, next_addr] {
        let rec = server.handler().by_peer(addr).expect("recorded");
        let closed = rec.closed.expect("closed");
        assert_eq!(closed.reason, CloseReason::IdleTimeout, "[{b}] reason");
        let idle = closed.closed_at.saturating_duration_since(rec.last_data_at);
        assert!(
            idle >= timeout,
            "[{b}] closed after only {idle:?} of silence"
        );
    }
    assert_eq!(server.stats().closed.get(CloseReason::IdleTimeout), 2);
}

/// Bad input closes only the connection that sent it, with a reason: a line
/// over the limit (`protocol`, after an error reply and a FIN), a
/// length-prefixed frame announcing more than the limit (`protocol`), and a
/// frame larger than the receive buffer that the handler cannot consume
/// (`rx_overflow`). A client on the same server is unaffected each time.
pub fn oversized_frame_closes_with_reason<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "oversized_frame_closes_with_reason";
    // 1. A line over the limit.
    {
        let mut server =
            start::<H, K, 2, 256, 256>(h, Recorder::new(Mode::Lines { max: 32 }), Config::new());
        let mut good = Peer::connect(h, &mut server, "good client");
        good.send_all(h, &mut server, b"fine\n");
        good.wait_bytes(h, &mut server, 5);
        let mut bad = Peer::connect(h, &mut server, "line client");
        let mut input = b"ok\n".to_vec();
        input.extend_from_slice(&[b'x'; 100]);
        input.push(b'\n');
        bad.send_all(h, &mut server, &input);
        bad.wait_end(h, &mut server);
        assert_eq!(
            bad.got, b"ok\nERR line too long\n",
            "[{b}] {scenario}: error reply"
        );
        assert!(bad.eof, "[{b}] {scenario}: the protocol close is graceful");
        bad.close(h);
        good.send_all(h, &mut server, b"still fine\n");
        good.wait_bytes(h, &mut server, 16);
        assert_eq!(good.got, b"fine\nstill fine\n");
        good.shutdown_write(h);
        good.wait_end(h, &mut server);
        good.close(h);
        assert_all_closed(h, &mut server, scenario);
        assert_eq!(
            server.stats().closed.get(CloseReason::Protocol),
            1,
            "[{b}] {scenario}"
        );
        let now = h.now();
        server.shutdown(h.stack(), now);
    }
    // 2. A frame header announcing more than the limit, 3. a frame larger
    // than the receive buffer.
    for (what, mode, reason) in [
        (
            "frame over the limit",
            Mode::Frames {
                prefix: Prefix::U16Be,
                max: 64,
            },
            CloseReason::Protocol,
        ),
        (
            "frame over the buffer",
            Mode::Frames {
                prefix: Prefix::U16Be,
                max: 4096,
            },
            CloseReason::RxOverflow,
        ),
    ] {
        let mut server = start::<H, K, 2, 128, 128>(h, Recorder::new(mode), Config::new());
        let mut good = Peer::connect(h, &mut server, "good client");
        good.send_all(h, &mut server, &[0, 2, b'o', b'k']);
        good.wait_bytes(h, &mut server, 4);
        let mut bad = Peer::connect(h, &mut server, format!("{what} client"));
        let mut input = std::vec![0x03, 0xe8]; // 1000 bytes announced
        input.extend_from_slice(&[b'y'; 300]);
        // Send what the client takes; the server may close before all of it.
        let mut sent = 0;
        let mut bound = Bound::new(h, format!("{what}: the server to close"));
        while !bad.ended() {
            if sent < input.len() {
                match h.send(bad.client.as_mut().expect("open"), &input[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => bad.reset = true,
                }
            }
            bad.pump(h);
            h.step(&mut server);
            bound.tick(h, &server);
        }
        bad.close(h);
        wait_for(
            h,
            &mut server,
            "the bad connection to be released",
            |_, s| s.active() == 1,
        );
        let reasons = server.handler().reasons();
        assert_eq!(reasons, [reason], "[{b}] {scenario}: {what}");
        assert_eq!(server.stats().closed.get(reason), 1);
        good.send_all(h, &mut server, &[0, 1, b'!']);
        good.wait_bytes(h, &mut server, 7);
        assert_eq!(
            good.got,
            [0, 2, b'o', b'k', 0, 1, b'!'],
            "[{b}] {scenario}: good client"
        );
        good.shutdown_write(h);
        good.wait_end(h, &mut server);
        good.close(h);
        assert_all_closed(h, &mut server, scenario);
        let now = h.now();
        server.shutdown(h.stack(), now);
    }
}

/// A line server with a 300 ms request deadline ([`LineTimeout`]): a
/// client that trickles a line a byte every 100 ms is closed with
/// `request_timeout`, while a prompt client's lines are answered, and time
/// between its lines does not count against it.
///
/// [`LineTimeout`]: tcpool_core::framing::LineTimeout
pub fn request_deadline_closes_trickling_clients<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let timeout = Duration::from_millis(300);
    let mut server = start::<H, K, 2, 256, 256>(
        h,
        Recorder::new(Mode::Lines { max: 64 }).with_request_timeout(timeout),
        Config::new(),
    );
    let mut prompt = Peer::connect(h, &mut server, "prompt client");
    let mut trickler = Peer::connect(h, &mut server, "trickling client");
    prompt.send_all(h, &mut server, b"PING\n");
    prompt.wait_bytes(h, &mut server, 5);
    let mut bound = Bound::new(h, "the trickling client to be closed");
    for byte in b"PINGPINGPINGPING".iter().cycle() {
        if trickler.ended() || server.stats().closed.get(CloseReason::RequestTimeout) > 0 {
            break;
        }
        trickler.try_send(h, &[*byte]);
        h.advance(Duration::from_millis(100), &mut server);
        trickler.pump(h);
        bound.tick(h, &server);
    }
    trickler.wait_end(h, &mut server);
    trickler.close(h);
    let rec = server.handler();
    let closed = rec.conns()[1].closed.expect("the trickler was closed");
    assert_eq!(
        closed.reason,
        CloseReason::RequestTimeout,
        "[{b}] the trickler's close reason"
    );
    assert!(
        closed.closed_at.saturating_duration_since(closed.opened_at) >= timeout,
        "[{b}] closed before its deadline: {closed:?}"
    );
    // The prompt client idled well past the timeout between lines: still served.
    assert!(!prompt.ended(), "[{b}] the prompt client was closed");
    prompt.send_all(h, &mut server, b"PONG\n");
    prompt.wait_bytes(h, &mut server, 10);
    assert_eq!(prompt.got, b"PING\nPONG\n", "[{b}] prompt client's answers");
    prompt.send_all(h, &mut server, b"QUIT\n");
    prompt.wait_end(h, &mut server);
    prompt.close(h);
    assert_eq!(
        server.stats().closed.get(CloseReason::RequestTimeout),
        1,
        "[{b}] one request timeout"
    );
    assert_all_closed(h, &mut server, "request_deadline_closes_trickling_clients");
}

/// A client asks for an endless stream and never reads: once the stack's
/// buffers are full and output has waited `write_stall`, the connection is
/// reset with `write_stall`, and a second client is served throughout.
pub fn write_stall_resets_a_peer_that_never_reads<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let stall = Duration::from_millis(300);
    let mut server = start::<H, K, 2, 256, 256>(
        h,
        Recorder::new(Mode::Lines { max: 64 }).counting_only(),
        Config::new().with_write_stall(Some(stall)),
    );
    let mut deaf = Peer::connect(h, &mut server, "client that never reads");
    let mut other = Peer::connect(h, &mut server, "other client");
    deaf.send_all(h, &mut server, b"SEND 1099511627776 7\n");
    wait_for(
        h,
        &mut server,
        "the deaf client to be reset for write_stall",
        |_, s| s.stats().closed.get(CloseReason::WriteStall) > 0,
    );
    other.send_all(h, &mut server, b"hi\n");
    other.wait_bytes(h, &mut server, 3);
    assert_eq!(other.got, b"hi\n", "[{b}] the other client is served");
    deaf.pump_up_to(h, usize::MAX);
    deaf.wait_end(h, &mut server);
    deaf.close(h);
    let closed = server.handler().conns()[0]
        .closed
        .expect("the deaf client was closed");
    assert_eq!(closed.reason, CloseReason::WriteStall, "[{b}] close reason");
    other.send_all(h, &mut server, b"QUIT\n");
    other.wait_end(h, &mut server);
    other.close(h);
    assert_all_closed(h, &mut server, "write_stall_resets_a_peer_that_never_reads");
}

/// The handler aborts a connection with nothing unread and nothing
/// pending: the peer sees a reset, not an end of stream, and the
/// connection ends with `aborted`. A second client on the same server is
/// untouched.
pub fn abort_resets_the_peer<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let mut server =
        start::<H, K, 2, 256, 256>(h, Recorder::new(Mode::Lines { max: 64 }), Config::new());
    let mut victim = Peer::connect(h, &mut server, "aborted client");
    let mut other = Peer::connect(h, &mut server, "other client");
    for p in [&mut victim, &mut other] {
        p.send_all(h, &mut server, b"hi\n");
        p.wait_bytes(h, &mut server, 3);
    }
    victim.send_all(h, &mut server, b"ABORT\n");
    victim.wait_end(h, &mut server);
    assert!(
        victim.reset && !victim.eof,
        "[{b}] after abort the peer must see a reset, not a FIN (eof={}, reset={})",
        victim.eof,
        victim.reset
    );
    victim.close(h);
    other.send_all(h, &mut server, b"more\n");
    other.wait_bytes(h, &mut server, 8);
    assert_eq!(
        other.got, b"hi\nmore\n",
        "[{b}] the other client is untouched"
    );
    other.send_all(h, &mut server, b"QUIT\n");
    other.wait_end(h, &mut server);
    other.close(h);
    assert_eq!(
        server.handler().reasons(),
        [CloseReason::Aborted, CloseReason::Local],
        "[{b}] close reasons"
    );
    assert_all_closed(h, &mut server, "abort_resets_the_peer");
}

/// Three clients stream patterned data through an echo server; one resets
/// its connection mid-transfer with data in flight both ways. Its slot ends
/// with reason `reset` and the handler saw a prefix of its stream; the other
/// two finish byte-exact, and the freed slot serves a new client.
pub fn peer_reset_mid_transfer_affects_no_other_client<H: Harness, K: Kind<H::Stack>>(h: &mut H) {
    let b = H::BACKEND;
    let scenario = "peer_reset_mid_transfer_affects_no_other_client";
    let size = h.transfer_size().bytes.min(1024 * 1024);
    let mut server = start::<H, K, 3, 1024, 1024>(h, Recorder::new(Mode::Echo), Config::new());
    let streams: Vec<Vec<u8>> = (0..3)
        .map(|i| Pattern::new(100 + i).bytes(0, size))
        .collect();
    let mut peers: Vec<Peer<H>> = (0..3)
        .map(|i| Peer::connect(h, &mut server, format!("client {i}")))
        .collect();
    let addrs: Vec<_> = peers.iter_mut().map(|p| p.addr(h)).collect();
    let mut sent = [0usize; 3];
    let reset_at = size / 3;
    let mut reset_done = false;
    let mut bound = Bound::new(h, "two streams to finish beside a reset one");
    loop {
        for i in 0..3 {
            if i == 1 && reset_done {
                continue;
            }
            let p = &mut peers[i];
            let limit = if i == 1 { reset_at } else { size };
            if sent[i] < limit {
                let end = (sent[i] + 16 * 1024).min(limit);
                let n = p.try_send(h, &streams[i][sent[i]..end]);
                sent[i] += n;
                if n > 0 {
                    bound.progress();
                }
                if sent[i] == size {
                    p.shutdown_write(h);
                }
            }
            if p.pump(h) {
                bound.progress();
            }
            if i == 1 && sent[1] == reset_at && p.received > 0 {
                // Data in flight both ways: reset now.
                p.reset(h);
                reset_done = true;
            }
        }
        if peers[0].ended() && peers[2].ended() && reset_done {
            break;
        }
        h.step(&mut server);
        bound.tick(h, &server);
    }
    for i in [0, 2] {
        let p = &peers[i];
        assert!(
            p.eof && !p.reset,
            "[{b}] {scenario}: {} ended with a reset",
            p.name
        );
        assert_eq!(
            p.got.len(),
            size,
            "[{b}] {scenario}: {} echo length",
            p.name
        );
        assert!(
            p.got == streams[i],
            "[{b}] {scenario}: {} echo differs",
            p.name
        );
    }
    wait_for(
        h,
        &mut server,
        "the reset connection to be released",
        |_, s| s.active() == 0,
    );
    let rec = server.handler();
    let reset_rec = rec.by_peer(addrs[1]).expect("recorded");
    assert_eq!(
        reset_rec.closed.expect("closed").reason,
        CloseReason::Reset,
        "[{b}] {scenario}: reason of the reset connection"
    );
    assert!(
        streams[1].starts_with(&reset_rec.data),
        "[{b}] {scenario}: the reset connection's input is not a prefix of its stream"
    );
    for i in [0, 2] {
        let r = rec.by_peer(addrs[i]).expect("recorded");
        assert!(r.data == streams[i], "[{b}] {scenario}: client {i} input");
        assert_eq!(r.closed.expect("closed").reason, CloseReason::PeerClosed);
    }
    // The freed slot serves someone new.
    let mut fresh = Peer::connect(h, &mut server, "fresh client");
    fresh.send_all(h, &mut server, b"after the reset");
    fresh.wait_bytes(h, &mut server, 15);
    assert_eq!(fresh.got, b"after the reset");
    fresh.shutdown_write(h);
    fresh.wait_end(h, &mut server);
    fresh.close(h);
    for p in peers.iter_mut() {
        p.close(h);
    }
    assert_all_closed(h, &mut server, scenario);
}
