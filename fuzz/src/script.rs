//! [`Script`]: the handler the pool and server targets run. What it does
//! with each callback follows a [`Behaviour`] the fuzz input picks (and
//! may change at any step); what it sees is checked against what each
//! peer really sent, in every callback:
//!
//! * `on_data` is offered exactly the next unconsumed bytes the peer sent,
//!   in order, never empty, never after `on_peer_closed` or `on_closed`;
//! * `on_peer_closed` comes once, after every byte the peer sent was
//!   offered;
//! * `on_closed` comes exactly once per connection opened, with byte
//!   counts that match what the peer sent and what the handler wrote.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use tcpool_core::framing::{LineTimeout, Lines};
use tcpool_core::{CloseReason, Closed, Conn, ConnId, Duration, Handler};

/// How much of the offered input `on_data` consumes.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consume {
    /// Everything.
    All,
    /// Nothing (a frame that never completes).
    Nothing,
    /// At most this many bytes.
    AtMost(u8),
    /// Complete lines of at most this many bytes; a line too long closes
    /// with [`CloseReason::Protocol`].
    Lines(u8),
    /// More than was offered (a handler bug the pool must survive: it
    /// counts only what was there).
    TooMuch(u8),
}

/// What `on_peer_closed` does.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPeerClosed {
    /// Close gracefully (the default of the trait).
    Close,
    /// Nothing: the connection stays until something else ends it.
    Nothing,
    /// Write this many bytes, then close.
    WriteThenClose(u8),
    /// Abort.
    Abort,
}

/// What the handler does in its callbacks.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Consumption in `on_data`.
    pub consume: Consume,
    /// Echo the consumed bytes (and consume only what the echo could
    /// write, as an echo server does).
    pub echo: bool,
    /// Bytes written in `on_open` (a greeting).
    pub greet: u8,
    /// Extra bytes written in every `on_data`.
    pub extra: u8,
    /// Bytes written in `on_writable`.
    pub on_writable: u8,
    /// A deadline `on_open` sets, in ms from the accept.
    pub open_deadline: Option<u16>,
    /// The line-deadline policy ([`LineTimeout`]), in ms.
    pub line_timeout: Option<u16>,
    /// Close when a consumed byte equals this.
    pub close_on: Option<u8>,
    /// Abort when a consumed byte equals this.
    pub abort_on: Option<u8>,
    /// Refuse peers whose port is a multiple of this (0: admit all).
    pub refuse_every: u8,
    /// What `on_peer_closed` does.
    pub peer_closed: OnPeerClosed,
}

impl Default for Behaviour {
    /// An echo server.
    fn default() -> Self {
        Behaviour {
            consume: Consume::All,
            echo: true,
            greet: 0,
            extra: 0,
            on_writable: 0,
            open_deadline: None,
            line_timeout: None,
            close_on: None,
            abort_on: None,
            refuse_every: 0,
            peer_closed: OnPeerClosed::Close,
        }
    }
}

/// What the handler knows about one peer (keyed by its address, unique in
/// a run).
#[derive(Debug, Default, Clone)]
pub struct PeerRec {
    /// The bytes the peer sent, as far as the driver knows them: in the
    /// pool target the bytes fed through `Received`, in the server target
    /// what the client's sends took.
    pub stream: Vec<u8>,
    /// Whether `stream` holds exactly what the server has received (the
    /// pool target), so each offer must reach its end.
    pub exact: bool,
    /// The connection, once opened.
    pub id: Option<ConnId>,
    /// Bytes consumed by `on_data`.
    pub consumed: usize,
    /// The end of the furthest offer (`consumed` + its length).
    pub offered_upto: usize,
    /// What the handler wrote (accepted by the `Conn`), in order.
    pub written: Vec<u8>,
    /// `on_peer_closed` ran.
    pub peer_closed: bool,
    /// What `on_closed` reported.
    pub closed: Option<Closed>,
}

/// The fuzzed handler. See the module docs.
#[derive(Debug, Default)]
pub struct Script {
    /// What the callbacks do now.
    pub behaviour: Behaviour,
    /// End of a run: consume everything, write nothing, close at the
    /// peer's end of stream.
    pub finishing: bool,
    peers: BTreeMap<SocketAddr, PeerRec>,
    ids: BTreeMap<ConnId, SocketAddr>,
    opened: usize,
    closed: usize,
    /// The last connection `on_open` saw.
    pub last_opened: Option<(ConnId, SocketAddr)>,
}

/// Output whose every byte depends on its position, so that a lost,
/// repeated or reordered byte shows.
fn pattern(at: usize, n: usize) -> Vec<u8> {
    (at..at + n).map(|i| (i % 251) as u8).collect()
}

impl Script {
    /// A handler that will check offers against `exact` streams (see
    /// [`PeerRec::exact`]).
    pub fn new(behaviour: Behaviour) -> Self {
        Script {
            behaviour,
            ..Script::default()
        }
    }

    /// The driver learned that `peer` sent `bytes` (appended to its stream).
    pub fn peer_sent(&mut self, peer: SocketAddr, bytes: &[u8], exact: bool) {
        let rec = self.peers.entry(peer).or_default();
        rec.exact = exact;
        rec.stream.extend_from_slice(bytes);
    }

    /// What is known about `peer`.
    pub fn peer(&self, peer: SocketAddr) -> Option<&PeerRec> {
        self.peers.get(&peer)
    }

    /// Every peer.
    pub fn peers(&self) -> impl Iterator<Item = (&SocketAddr, &PeerRec)> {
        self.peers.iter()
    }

    /// The ids of connections opened and not closed.
    pub fn live(&self) -> Vec<ConnId> {
        self.peers
            .values()
            .filter(|r| r.closed.is_none())
            .filter_map(|r| r.id)
            .collect()
    }

    /// `on_open` calls.
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// `on_closed` calls.
    pub fn closed(&self) -> usize {
        self.closed
    }

    fn rec(&mut self, conn: &Conn<'_>) -> &mut PeerRec {
        let peer = conn.peer();
        let rec = self
            .peers
            .get_mut(&peer)
            .unwrap_or_else(|| panic!("a callback for unknown peer {peer}"));
        assert_eq!(
            rec.id,
            Some(conn.id()),
            "callback for {peer} with a stray id"
        );
        assert!(
            rec.closed.is_none(),
            "callback for conn {} after on_closed",
            conn.id()
        );
        rec
    }

    /// Writes and records what the connection took.
    fn write(&mut self, conn: &mut Conn<'_>, data: &[u8], all: bool) -> usize {
        let n = if all {
            match conn.write_all(data) {
                Ok(()) => data.len(),
                Err(_) => 0,
            }
        } else {
            conn.write(data)
        };
        assert!(n <= data.len());
        self.rec(conn).written.extend_from_slice(&data[..n]);
        n
    }

    fn write_pattern(&mut self, conn: &mut Conn<'_>, n: u8) {
        if n > 0 {
            let at = self.rec(conn).written.len();
            let all = n.is_multiple_of(2);
            self.write(conn, &pattern(at, usize::from(n)), all);
        }
    }

    /// Does `op` to the connection from outside a callback (what
    /// `with_conn` does), recording what it writes.
    pub fn outside(&mut self, conn: &mut Conn<'_>, op: Outside) {
        match op {
            Outside::Close => conn.close(),
            Outside::Abort => conn.abort(),
            Outside::Deadline(Some(ms)) => {
                let at = conn.now() + Duration::from_millis(u64::from(ms));
                conn.set_deadline(at);
            }
            Outside::Deadline(None) => conn.clear_deadline(),
            Outside::Write(n) => self.write_pattern(conn, n),
        }
    }
}

/// What the application does to a live connection from outside the
/// callbacks (the fuzz targets' `Close`, `Abort`, `Deadline` and `Write`
/// steps).
#[derive(Debug, Clone, Copy)]
pub enum Outside {
    /// `Conn::close`.
    Close,
    /// `Conn::abort`.
    Abort,
    /// `Conn::set_deadline` this many milliseconds from now, or (`None`)
    /// `Conn::clear_deadline`.
    Deadline(Option<u16>),
    /// Writes this many bytes of the script's pattern.
    Write(u8),
}

impl Handler for Script {
    type State = ();

    fn admit(&mut self, peer: SocketAddr) -> bool {
        let every = self.behaviour.refuse_every;
        self.finishing || every == 0 || !peer.port().is_multiple_of(u16::from(every))
    }

    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let (id, peer) = (conn.id(), conn.peer());
        assert!(
            self.ids.insert(id, peer).is_none(),
            "connection id {id} handed out twice"
        );
        let rec = self.peers.entry(peer).or_default();
        assert!(rec.id.is_none(), "peer {peer} opened twice");
        rec.id = Some(id);
        self.opened += 1;
        self.last_opened = Some((id, peer));
        if self.finishing {
            return;
        }
        let b = self.behaviour;
        if let Some(ms) = b.open_deadline {
            conn.set_deadline(conn.now() + Duration::from_millis(u64::from(ms)));
        }
        if let Some(ms) = b.line_timeout {
            LineTimeout::new(Duration::from_millis(u64::from(ms))).opened(conn);
        }
        self.write_pattern(conn, b.greet);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, _: &mut (), data: &[u8]) -> usize {
        let id = conn.id();
        let rec = self.rec(conn);
        assert!(!data.is_empty(), "conn {id}: on_data with no data");
        assert!(!rec.peer_closed, "conn {id}: on_data after on_peer_closed");
        let at = rec.consumed;
        let expected = rec.stream.get(at..at + data.len());
        assert!(
            expected == Some(data),
            "conn {id}: offered {} bytes at {at} that the peer did not send there \
             (it sent {})",
            data.len(),
            rec.stream.len()
        );
        if rec.exact {
            assert_eq!(
                at + data.len(),
                rec.stream.len(),
                "conn {id}: received bytes held back from on_data"
            );
        }
        rec.offered_upto = rec.offered_upto.max(at + data.len());
        let used = if self.finishing {
            data.len()
        } else {
            self.act_on_data(conn, data)
        };
        let rec = self.rec(conn);
        rec.consumed += used.min(data.len());
        used
    }

    fn on_peer_closed(&mut self, conn: &mut Conn<'_>, _: &mut ()) {
        let id = conn.id();
        let rec = self.rec(conn);
        assert!(!rec.peer_closed, "conn {id}: on_peer_closed twice");
        rec.peer_closed = true;
        assert!(
            rec.consumed == rec.stream.len() || rec.offered_upto == rec.stream.len(),
            "conn {id}: on_peer_closed before every byte was offered \
             (offered {} of {})",
            rec.offered_upto,
            rec.stream.len()
        );
        if self.finishing {
            conn.close();
            return;
        }
        match self.behaviour.peer_closed {
            OnPeerClosed::Close => conn.close(),
            OnPeerClosed::Nothing => {}
            OnPeerClosed::WriteThenClose(n) => {
                self.write_pattern(conn, n);
                conn.close();
            }
            OnPeerClosed::Abort => conn.abort(),
        }
    }

    fn on_writable(&mut self, conn: &mut Conn<'_>, _: &mut ()) {
        self.rec(conn);
        if !self.finishing {
            self.write_pattern(conn, self.behaviour.on_writable);
        }
    }

    fn on_closed(&mut self, closed: &Closed, _: ()) {
        let id = closed.id;
        let peer = *self
            .ids
            .get(&id)
            .unwrap_or_else(|| panic!("on_closed for conn {id}, never opened"));
        assert_eq!(peer, closed.peer);
        let rec = self
            .peers
            .get_mut(&peer)
            .expect("opened peers have a record");
        assert!(rec.closed.is_none(), "conn {id}: on_closed twice");
        rec.closed = Some(*closed);
        self.closed += 1;
        let bytes_in = closed.bytes_in as usize;
        assert!(
            bytes_in <= rec.stream.len(),
            "conn {id}: {bytes_in} bytes in, the peer sent {}",
            rec.stream.len()
        );
        if rec.exact || rec.peer_closed || closed.reason == CloseReason::PeerClosed {
            // Everything the peer sent was received (its end of stream
            // came after it).
            assert_eq!(bytes_in, rec.stream.len(), "conn {id}: bytes in");
        }
        assert!(
            closed.bytes_out as usize <= rec.written.len(),
            "conn {id}: {} bytes out, {} written",
            closed.bytes_out,
            rec.written.len()
        );
        assert!(closed.closed_at >= closed.opened_at);
    }
}

impl Script {
    /// `on_data` under the current behaviour; returns what to report as
    /// consumed.
    fn act_on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let b = self.behaviour;
        let (mut used, complete_lines) = match b.consume {
            Consume::All => (data.len(), false),
            Consume::Nothing => (0, false),
            Consume::AtMost(n) => (data.len().min(usize::from(n)), false),
            Consume::TooMuch(n) => (data.len() + usize::from(n), false),
            Consume::Lines(max) => {
                let mut lines = Lines::new(data, usize::from(max));
                let mut complete = false;
                for line in lines.by_ref() {
                    match line {
                        Ok(_) => complete = true,
                        Err(_) => conn.close_with(CloseReason::Protocol),
                    }
                }
                (lines.consumed(), complete)
            }
        };
        let consumed = used.min(data.len());
        if b.echo && consumed > 0 {
            let n = self.write(conn, &data[..consumed], false);
            used = n;
        }
        let taken = &data[..used.min(data.len())];
        if let Some(byte) = b.close_on
            && taken.contains(&byte)
        {
            conn.close();
        }
        if let Some(byte) = b.abort_on
            && taken.contains(&byte)
        {
            conn.abort();
        }
        if let Some(ms) = b.line_timeout {
            let left = data.len() - used.min(data.len());
            LineTimeout::new(Duration::from_millis(u64::from(ms))).parsed(
                conn,
                complete_lines,
                left,
            );
        }
        self.write_pattern(conn, b.extra);
        used
    }
}
