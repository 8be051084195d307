//! The virtio-net NIC as a smoltcp `Device`, without a heap: the
//! `virtio-drivers` raw driver over virtio-mmio, queue memory from a static
//! page pool, and frame buffers in statics (identity-mapped: the physical
//! address of a buffer is its address).
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::EthernetAddress;
use static_cell::ConstStaticCell;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Descriptors per virtqueue (receive and transmit).
const QUEUE: usize = 8;
/// Receive buffers: one per receive descriptor, all posted at all times.
const RX_BUFFERS: usize = QUEUE;
/// Transmit buffers in flight at once.
const TX_BUFFERS: usize = 4;
/// One buffer: the virtio-net header (12 bytes) and an Ethernet frame of up
/// to 1514 bytes, rounded up.
const BUFFER: usize = 1536;
/// The Ethernet MTU smoltcp is told (frame without FCS).
const MTU: usize = 1514;
/// Pages of queue memory: two queues of 8 entries need 4 (descriptor
/// table and available ring in one page, used ring in another).
const DMA_PAGES: usize = 4;

// --------------------------------------------------------------------- HAL

#[repr(C, align(4096))]
struct DmaPool(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: the pool is handed out in disjoint page ranges (`NEXT_PAGE` only
// grows), each to one owner; the pool itself is never read or written
// through a reference.
unsafe impl Sync for DmaPool {}

static DMA: DmaPool = DmaPool(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
static NEXT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// `virtio_drivers::Hal` for identity-mapped RAM with a bump allocator over
/// [`DMA`]: queue memory is taken once at boot and never given back.
pub struct BumpHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed (.bss, never handed out
// twice), exclusively owned memory whose physical address is its address;
// `share` returns the buffer's own address, valid on this identity-mapped
// board.
unsafe impl Hal for BumpHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT_PAGE.fetch_add(pages, Ordering::Relaxed);
        assert!(
            first + pages <= DMA_PAGES,
            "virtio queue memory exhausted: raise DMA_PAGES"
        );
        let base = DMA.0.get().cast::<u8>();
        // SAFETY: `first * PAGE_SIZE` is within the pool (checked above).
        let ptr = unsafe { base.add(first * PAGE_SIZE) };
        let ptr = NonNull::new(ptr).expect("static address is not null");
        (ptr.as_ptr() as usize as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Queues live as long as the firmware: nothing is ever given back.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).expect("MMIO address is not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

// --------------------------------------------------------------------- NIC

type Buffers<const K: usize> = [[u8; BUFFER]; K];

static RX: ConstStaticCell<Buffers<RX_BUFFERS>> = ConstStaticCell::new([[0; BUFFER]; RX_BUFFERS]);
static TX: ConstStaticCell<Buffers<TX_BUFFERS>> = ConstStaticCell::new([[0; BUFFER]; TX_BUFFERS]);

/// Why no NIC came up.
#[derive(Debug)]
pub enum NicError {
    /// The device tree lists no virtio-mmio device of type network.
    NotFound,
    /// The driver refused the device.
    Driver(virtio_drivers::Error),
}

impl core::fmt::Display for NicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NicError::NotFound => f.write_str("no virtio-mmio network device in the device tree"),
            NicError::Driver(e) => write!(f, "virtio-net driver: {e}"),
        }
    }
}

/// A virtio-mmio slot from the device tree: its register window and IRQ.
#[derive(Clone, Copy, Debug)]
pub struct MmioSlot {
    /// Base address of the register window.
    pub base: usize,
    /// Size of the window.
    pub size: usize,
    /// PLIC source of the slot.
    pub irq: u32,
}

type Driver = VirtIONetRaw<BumpHal, MmioTransport<'static>, QUEUE>;

/// The receive side: every buffer is posted to the device, except at most
/// one whose frame smoltcp is reading.
struct RxRing {
    bufs: &'static mut Buffers<RX_BUFFERS>,
    /// The token of each posted buffer.
    token: [Option<u16>; RX_BUFFERS],
    /// A buffer handed to smoltcp, to post again before the next receive.
    lent: Option<usize>,
}

/// The transmit side: buffers with a token are owned by the device.
struct TxRing {
    bufs: &'static mut Buffers<TX_BUFFERS>,
    /// Token and length (header + frame) of each buffer in flight.
    flight: [Option<(u16, usize)>; TX_BUFFERS],
}

/// The NIC, ready for smoltcp.
pub struct Nic {
    net: Driver,
    rx: RxRing,
    tx: TxRing,
    irq: u32,
    /// Frames dropped because the driver reported an error on them.
    pub rx_errors: u32,
}

impl Nic {
    /// Brings up the first virtio network device among `slots`.
    pub fn probe(slots: impl Iterator<Item = MmioSlot>) -> Result<Nic, NicError> {
        for slot in slots {
            let Some(header) = NonNull::new(slot.base as *mut VirtIOHeader) else {
                continue;
            };
            // SAFETY: the device tree names this window as a virtio-mmio
            // register block (header and config space); it stays mapped
            // for the firmware's lifetime and nothing else touches it.
            let Ok(transport) = (unsafe { MmioTransport::new(header, slot.size) }) else {
                continue;
            };
            if transport.device_type() != DeviceType::Network {
                continue;
            }
            let net = Driver::new(transport).map_err(NicError::Driver)?;
            let mut nic = Nic {
                net,
                rx: RxRing {
                    bufs: RX.take(),
                    token: [None; RX_BUFFERS],
                    lent: None,
                },
                tx: TxRing {
                    bufs: TX.take(),
                    flight: [None; TX_BUFFERS],
                },
                irq: slot.irq,
                rx_errors: 0,
            };
            for i in 0..RX_BUFFERS {
                nic.post(i).map_err(NicError::Driver)?;
            }
            nic.net.enable_interrupts();
            return Ok(nic);
        }
        Err(NicError::NotFound)
    }

    /// The NIC's PLIC source.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// The MAC address the device reports.
    pub fn mac(&self) -> EthernetAddress {
        EthernetAddress(self.net.mac_address())
    }

    /// Acknowledges the device's interrupt (before completing it at the PLIC).
    pub fn ack_interrupt(&mut self) {
        self.net.ack_interrupt();
    }

    /// Gives receive buffer `i` to the device.
    fn post(&mut self, i: usize) -> Result<(), virtio_drivers::Error> {
        // SAFETY: buffer `i` is not posted (its token is `None`) and no
        // reference to it is alive (`lent` buffers are posted again only
        // after smoltcp's token, which borrowed it, is gone); it stays
        // untouched until `receive_complete` returns it.
        let token = unsafe { self.net.receive_begin(&mut self.rx.bufs[i]) }?;
        self.rx.token[i] = Some(token);
        Ok(())
    }

    /// Posts the buffer smoltcp read last, if any.
    fn repost_lent(&mut self) {
        if let Some(i) = self.rx.lent.take() {
            // A failure here leaves one buffer fewer posted (the queue has a
            // descriptor for each buffer, so it cannot be full).
            if self.post(i).is_err() {
                self.rx_errors = self.rx_errors.wrapping_add(1);
            }
        }
    }

    /// The next received frame: the index of its buffer and where the
    /// frame lies in it.
    fn next_frame(&mut self) -> Option<(usize, usize, usize)> {
        loop {
            let token = self.net.poll_receive()?;
            let i = self.rx.token.iter().position(|t| *t == Some(token))?;
            self.rx.token[i] = None;
            // SAFETY: the same buffer that was posted with this token.
            match unsafe { self.net.receive_complete(token, &mut self.rx.bufs[i]) } {
                Ok((header, len)) if header + len <= BUFFER => return Some((i, header, len)),
                _ => {
                    self.rx_errors = self.rx_errors.wrapping_add(1);
                    let _ = self.post(i);
                }
            }
        }
    }
}

impl TxRing {
    /// Takes back the buffers the device has finished sending.
    fn reclaim(&mut self, net: &mut Driver) {
        while let Some(token) = net.poll_transmit() {
            let Some(i) = self
                .flight
                .iter()
                .position(|f| matches!(f, Some((t, _)) if *t == token))
            else {
                // Not ours: cannot happen (every transmission starts here).
                panic!("virtio-net completed an unknown transmit token {token}");
            };
            let (_, len) = self.flight[i].take().expect("in flight");
            // SAFETY: the same buffer (and length) that was submitted with
            // this token.
            let _ = unsafe { net.transmit_complete(token, &self.bufs[i][..len]) };
        }
    }

    fn free(&self) -> Option<usize> {
        self.flight.iter().position(Option::is_none)
    }
}

/// smoltcp's token for one received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// smoltcp's token for one frame to send.
pub struct TxToken<'a> {
    net: &'a mut Driver,
    tx: &'a mut TxRing,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let TxToken { net, tx } = self;
        // QEMU completes transmissions within microseconds; wait for a
        // buffer if all are in flight.
        let i = loop {
            tx.reclaim(net);
            if let Some(i) = tx.free() {
                break i;
            }
            core::hint::spin_loop();
        };
        let buf = &mut tx.bufs[i];
        let header = net
            .fill_buffer_header(buf)
            .expect("buffer holds a virtio-net header");
        let total = header + len.min(BUFFER - header);
        let result = f(&mut buf[header..total]);
        // SAFETY: buffer `i` is not in flight and is not touched again until
        // `reclaim` gets its token back from the device. The queue has a
        // descriptor for every buffer, so it cannot be full; a frame the
        // driver refused anyway is lost like one lost on the wire (TCP
        // retransmits it).
        if let Ok(token) = unsafe { net.transmit_begin(&buf[..total]) } {
            tx.flight[i] = Some((token, total));
        }
        result
    }
}

impl phy::Device for Nic {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.repost_lent();
        let (i, header, len) = self.next_frame()?;
        self.rx.lent = Some(i);
        Some((
            RxToken {
                frame: &self.rx.bufs[i][header..header + len],
            },
            TxToken {
                net: &mut self.net,
                tx: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        self.repost_lent();
        Some(TxToken {
            net: &mut self.net,
            tx: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(TX_BUFFERS);
        // QEMU's virtio-net without offloads negotiated delivers frames with
        // real checksums and expects them: compute and verify in software.
        caps.checksum.ipv4 = Checksum::Both;
        caps.checksum.tcp = Checksum::Both;
        caps
    }
}
