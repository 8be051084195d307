//! In-memory networks for embassy-net on the host (feature `sim`): a
//! [`Wire`] joining two embassy-net stacks, or looping one back to itself,
//! as [`embassy_net_driver::Driver`]s. No root, no TAP device.
//!
//! Frames are delivered in order and never lost; the receiving runner's
//! waker is woken when a frame arrives. Time is whatever embassy-time
//! says: tests use its `mock-driver` to make it deterministic.

use core::task::{Context, Waker};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::vec::Vec;

use embassy_net::{Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState, RxToken, TxToken};

/// The MTU of the simulated links.
pub const MTU: usize = 1500;

#[derive(Default)]
struct WireState {
    /// Frames waiting to be received by each end.
    queues: [VecDeque<Vec<u8>>; 2],
    /// The runner waiting on each end.
    wakers: [Option<Waker>; 2],
    /// Frames carried so far.
    frames: u64,
}

/// An in-memory link between two ends ([`WireEnd`]).
///
/// ```
/// use tcpool_embassy::sim::Wire;
///
/// let wire = Wire::new();
/// let (_a, _b) = (wire.end(0), wire.end(1));
/// assert_eq!(wire.frames(), 0);
/// ```
#[derive(Clone, Default)]
pub struct Wire {
    state: Rc<RefCell<WireState>>,
}

impl Wire {
    /// An empty wire.
    pub fn new() -> Self {
        Wire::default()
    }

    /// The end `side` (0 or 1): it receives what the other end sends.
    pub fn end(&self, side: usize) -> WireEnd {
        WireEnd {
            state: self.state.clone(),
            me: side & 1,
            to: 1 - (side & 1),
        }
    }

    /// One end that receives what it sends itself: a loopback device, so
    /// that servers and clients can share one stack.
    pub fn loopback(&self) -> WireEnd {
        WireEnd {
            state: self.state.clone(),
            me: 0,
            to: 0,
        }
    }

    /// Frames carried so far.
    pub fn frames(&self) -> u64 {
        self.state.borrow().frames
    }

    /// Frames waiting to be received.
    pub fn in_flight(&self) -> usize {
        let s = self.state.borrow();
        s.queues[0].len() + s.queues[1].len()
    }
}

/// One end of a [`Wire`]: an embassy-net [`Driver`] with IP medium.
pub struct WireEnd {
    state: Rc<RefCell<WireState>>,
    me: usize,
    to: usize,
}

impl Driver for WireEnd {
    type RxToken<'a> = Frame;
    type TxToken<'a> = SendToken<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Frame, SendToken<'_>)> {
        let mut s = self.state.borrow_mut();
        match s.queues[self.me].pop_front() {
            Some(frame) => {
                drop(s);
                Some((
                    Frame(frame),
                    SendToken {
                        state: &self.state,
                        to: self.to,
                    },
                ))
            }
            None => {
                s.wakers[self.me] = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<SendToken<'_>> {
        Some(SendToken {
            state: &self.state,
            to: self.to,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

/// A received frame.
pub struct Frame(Vec<u8>);

impl RxToken for Frame {
    fn consume<R, F>(mut self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        f(&mut self.0)
    }
}

/// A frame to send over the wire.
pub struct SendToken<'a> {
    state: &'a Rc<RefCell<WireState>>,
    to: usize,
}

impl TxToken for SendToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = std::vec![0u8; len];
        let r = f(&mut frame);
        let mut s = self.state.borrow_mut();
        s.queues[self.to].push_back(frame);
        s.frames += 1;
        let waker = s.wakers[self.to].take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        r
    }
}

/// An embassy-net stack on `driver` with the static address `ip/24`, its
/// resources leaked (tests and tools only: they live as long as the
/// process). `SOCK` is the size of its socket set.
pub fn leak_stack<D: Driver + 'static, const SOCK: usize>(
    driver: D,
    ip: Ipv4Addr,
    seed: u64,
) -> (embassy_net::Stack<'static>, embassy_net::Runner<'static, D>) {
    let resources: &'static mut StackResources<SOCK> = Box::leak(Box::new(StackResources::new()));
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip, 24),
        gateway: None,
        dns_servers: heapless::Vec::new(),
    });
    embassy_net::new(driver, config, resources, seed)
}
