//! The devices of QEMU's `virt` board that the firmware drives by hand: the
//! ns16550 UART (console), the CLINT timer (clock and wake-up), the PLIC
//! (device interrupts), the SiFive test device (power off with an exit
//! code), and the painted stack that gives the high-water mark.
//!
//! Interrupts stay globally disabled (`mstatus.MIE` = 0): the firmware never
//! takes a trap. `mie` enables the timer and external lines only so that
//! `wfi` wakes up when one of them is pending; the main loop then claims
//! the PLIC sources itself.
#![allow(unsafe_code)]

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use tcpool_core::Instant;

/// ns16550 UART (`/soc/serial@10000000`).
const UART: usize = 0x1000_0000;
/// Its PLIC source.
pub const UART_IRQ: u32 = 10;
/// UART registers (byte offsets).
const UART_RBR_THR: usize = 0;
const UART_IER: usize = 1;
const UART_FCR: usize = 2;
const UART_LSR: usize = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// CLINT: hart 0's `mtimecmp` and the shared `mtime` (10 MHz on `virt`).
const CLINT_MTIMECMP: usize = 0x0200_4000;
const CLINT_MTIME: usize = 0x0200_BFF8;
const TICKS_PER_MS: u64 = 10_000;

/// PLIC: source priorities, hart 0 M-mode context enable bits, threshold
/// and claim/complete register.
const PLIC: usize = 0x0C00_0000;
const PLIC_ENABLE_CTX0: usize = PLIC + 0x2000;
const PLIC_THRESHOLD_CTX0: usize = PLIC + 0x20_0000;
const PLIC_CLAIM_CTX0: usize = PLIC + 0x20_0004;

/// SiFive test device: write `0x5555` to power off with exit status 0,
/// `(code << 16) | 0x3333` to exit with `code`.
const TEST_DEVICE: usize = 0x0010_0000;
const TEST_PASS: u32 = 0x5555;
const TEST_FAIL: u32 = 0x3333;

/// Writes an MMIO register of the board.
///
/// # Safety
///
/// `addr` must be one of the device registers named above, `T` its width.
unsafe fn mmio_write<T>(addr: usize, value: T) {
    // SAFETY: the caller names a register of a device QEMU's `virt` board
    // maps at that fixed address; nothing in Rust's memory aliases it.
    unsafe { write_volatile(addr as *mut T, value) }
}

/// Reads an MMIO register of the board.
///
/// # Safety
///
/// As for [`mmio_write`].
unsafe fn mmio_read<T>(addr: usize) -> T {
    // SAFETY: as in `mmio_write`.
    unsafe { read_volatile(addr as *const T) }
}

// ------------------------------------------------------------------ console

/// The UART: console output (`fmt::Write`) and input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uart;

impl Uart {
    /// Enables the FIFOs and the received-data interrupt (used as a wake-up
    /// source; see [`Plic`]).
    pub fn init() {
        // SAFETY: UART registers of the `virt` board, written with their width.
        unsafe {
            mmio_write::<u8>(UART + UART_FCR, 0x07);
            mmio_write::<u8>(UART + UART_IER, 0x01);
        }
    }

    fn put(byte: u8) {
        // SAFETY: UART registers of the `virt` board, byte-wide.
        unsafe {
            while mmio_read::<u8>(UART + UART_LSR) & LSR_THR_EMPTY == 0 {}
            mmio_write::<u8>(UART + UART_RBR_THR, byte);
        }
    }

    /// A received byte, if one is waiting.
    pub fn get() -> Option<u8> {
        // SAFETY: UART registers of the `virt` board, byte-wide; reading
        // RBR takes the byte (and clears the interrupt once none is left).
        unsafe {
            (mmio_read::<u8>(UART + UART_LSR) & LSR_DATA_READY != 0)
                .then(|| mmio_read::<u8>(UART + UART_RBR_THR))
        }
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                Uart::put(b'\r');
            }
            Uart::put(b);
        }
        Ok(())
    }
}

// -------------------------------------------------------------------- clock

fn mtime() -> u64 {
    // SAFETY: CLINT `mtime`, read as two 32-bit halves (RV32): the high
    // half is read again to catch a carry between the two reads.
    unsafe {
        loop {
            let hi = mmio_read::<u32>(CLINT_MTIME + 4);
            let lo = mmio_read::<u32>(CLINT_MTIME);
            if mmio_read::<u32>(CLINT_MTIME + 4) == hi {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }
}

/// Milliseconds since reset.
pub fn now() -> Instant {
    Instant::from_millis(mtime() / TICKS_PER_MS)
}

/// A seed for smoltcp (initial sequence numbers, ephemeral ports): the
/// timer's count, all the board offers without an entropy device.
pub fn seed() -> u64 {
    mtime()
}

fn set_mtimecmp(ticks: u64) {
    // SAFETY: hart 0's CLINT `mtimecmp`, written as two 32-bit halves
    // (RV32): the high half goes to all-ones first so that no intermediate
    // value lies in the past and fires early.
    unsafe {
        mmio_write::<u32>(CLINT_MTIMECMP + 4, u32::MAX);
        mmio_write::<u32>(CLINT_MTIMECMP, ticks as u32);
        mmio_write::<u32>(CLINT_MTIMECMP + 4, (ticks >> 32) as u32);
    }
}

/// Sleeps (`wfi`) until a device interrupt is pending or `deadline` has
/// come (`None`: no deadline). May return early.
pub fn sleep_until(deadline: Option<Instant>) {
    let ticks = deadline.map_or(u64::MAX, |d| d.as_millis().saturating_mul(TICKS_PER_MS));
    if ticks <= mtime() {
        return;
    }
    set_mtimecmp(ticks);
    // With `mstatus.MIE` clear, `wfi` resumes at the next instruction as
    // soon as an interrupt enabled in `mie` is pending: a PLIC source not
    // claimed yet, or the timer. Both stay pending until dealt with, so a
    // frame that arrived before this point cannot be slept through.
    riscv::asm::wfi();
    // Park the timer until the next sleep (this clears MTIP).
    set_mtimecmp(u64::MAX);
}

// --------------------------------------------------------------- interrupts

/// The PLIC, as used here: a few sources enabled for hart 0, claimed by
/// polling after `wfi` returns.
#[derive(Debug)]
pub struct Plic;

impl Plic {
    /// Enables `sources` for hart 0 (priority 1, threshold 0) and lets the
    /// external and timer interrupts wake `wfi`.
    pub fn init(sources: &[u32]) -> Plic {
        for &src in sources {
            // SAFETY: PLIC priority and enable registers of the `virt` board
            // for a source number below 96 (the board has 95).
            unsafe {
                mmio_write::<u32>(PLIC + 4 * src as usize, 1);
                let enable = PLIC_ENABLE_CTX0 + 4 * (src as usize / 32);
                let bits = mmio_read::<u32>(enable);
                mmio_write::<u32>(enable, bits | 1 << (src % 32));
            }
        }
        set_mtimecmp(u64::MAX);
        // SAFETY: the PLIC threshold register; `mie` only gates which
        // pending interrupts wake `wfi` (global interrupts stay off, no
        // trap is ever taken).
        unsafe {
            mmio_write::<u32>(PLIC_THRESHOLD_CTX0, 0);
            riscv::register::mie::set_mext();
            riscv::register::mie::set_mtimer();
        }
        Plic
    }

    /// Claims every pending source in turn and calls `handle` with it. The
    /// handler must acknowledge the interrupt at the device; the source is
    /// completed after it returns (completing first would re-raise it).
    pub fn dispatch(&mut self, mut handle: impl FnMut(u32)) {
        loop {
            // SAFETY: the PLIC claim/complete register of hart 0's M-mode
            // context: a read claims the highest pending source (0: none).
            let src = unsafe { mmio_read::<u32>(PLIC_CLAIM_CTX0) };
            if src == 0 {
                return;
            }
            handle(src);
            // SAFETY: writing the claimed source back completes it.
            unsafe { mmio_write::<u32>(PLIC_CLAIM_CTX0, src) };
        }
    }
}

// ---------------------------------------------------------------- power off

/// Powers the board off; QEMU exits with `code` (0: success).
pub fn exit(code: u16) -> ! {
    let value = if code == 0 {
        TEST_PASS
    } else {
        (u32::from(code) << 16) | TEST_FAIL
    };
    // SAFETY: the SiFive test device's only register.
    unsafe { mmio_write::<u32>(TEST_DEVICE, value) };
    loop {
        riscv::asm::wfi();
    }
}

// -------------------------------------------------------------- device tree

/// The device tree QEMU passed at reset (its address arrives in `a1`).
pub fn device_tree(addr: usize) -> Result<fdt::Fdt<'static>, fdt::FdtError> {
    // SAFETY: QEMU's reset code hands over the address of the flattened
    // device tree it placed in RAM above the firmware's memory region; it
    // is never written afterwards. `from_ptr` checks the header's magic
    // before it trusts the size.
    unsafe { fdt::Fdt::from_ptr(addr as *const u8) }
}

// -------------------------------------------------------------------- stack

/// The word the free stack is painted with.
const PAINT: u32 = 0x5AFE_C0DE;
/// Left unpainted below the stack pointer of [`paint_stack`]'s caller.
const PAINT_MARGIN: usize = 256;

unsafe extern "C" {
    /// The lowest address the stack may grow to (riscv-rt's linker script).
    static __estack: u8;
    /// The initial stack pointer: the top of the stack.
    static _stack_start: u8;
}

fn stack_bounds() -> (usize, usize) {
    let bottom = (&raw const __estack) as usize;
    let top = (&raw const _stack_start) as usize;
    (bottom.next_multiple_of(4), top)
}

/// Paints the unused stack (from its lowest address up to a little below
/// the current stack pointer) so that [`stack_high_water`] can tell how
/// deep it was ever used. Call once, early in `main`.
#[inline(never)]
pub fn paint_stack() {
    let sp: usize;
    // SAFETY: reads the stack pointer, touches nothing else.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
    let (bottom, _) = stack_bounds();
    let end = (sp - PAINT_MARGIN) & !3;
    let mut addr = bottom;
    while addr < end {
        // SAFETY: `[bottom, end)` is stack memory below every live frame
        // (interrupts are off, and this function calls nothing while it
        // paints); no Rust object lives there.
        unsafe { write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

/// Bytes of stack used at the deepest point so far: from the top down to
/// the lowest word that lost its paint.
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut addr = bottom;
    // SAFETY: reads painted stack memory below the live frames, word by word.
    while addr < top && unsafe { read_volatile(addr as *const u32) } == PAINT {
        addr += 4;
    }
    top - addr
}
