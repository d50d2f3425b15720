//! Hints for valgrind's memcheck, no-ops on real hardware.
//!
//! memcheck follows the stack pointer: memory a greenlet's frames leave
//! when they return becomes "no access" until the stack pointer comes down
//! over it again. A pooled stack reused by the next greenlet is then written
//! from outside (the switch places the new body and its first frame below
//! the top, from the hub's stack), which memcheck would report as invalid
//! writes. [`mark_undefined`] tells it the memory is usable again, with
//! undefined contents, as fresh stack memory is. memcheck does not model
//! `madvise(MADV_DONTNEED)` either, after which the kernel reads the pages
//! as zeros: [`mark_defined`] says so.
//!
//! A client request is a magic instruction sequence that valgrind's JIT
//! recognises and that does nothing on a real CPU (rotations of a register
//! by a total of 128 bits and an `xchg` of a register with itself). The
//! sequence and the request numbers are valgrind's documented client
//! request ABI (`valgrind.h`, `memcheck.h`).

use std::sync::atomic::{AtomicU8, Ordering};

/// `VG_USERREQ__MAKE_MEM_UNDEFINED`: memcheck's tool base (`'M'`, `'C'`) + 1.
const MAKE_MEM_UNDEFINED: u64 = ((b'M' as u64) << 24 | (b'C' as u64) << 16) + 1;
/// `VG_USERREQ__MAKE_MEM_DEFINED`: the next request of memcheck's.
const MAKE_MEM_DEFINED: u64 = MAKE_MEM_UNDEFINED + 1;

/// Issues client request `args[0]` with arguments `args[1..]`; returns
/// `default` when not running under valgrind.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn request(default: u64, args: &[u64; 6]) -> u64 {
    let result;
    // SAFETY: the four rotations turn `rdi` by 128 bits (back to its value)
    // and `xchg rbx, rbx` swaps a register with itself: on a CPU the block
    // changes nothing. Under valgrind it reads the six words at `rax` (a
    // live array) and writes the answer to `rdx`.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            options(nostack, preserves_flags),
        );
    }
    result
}

/// Other targets: no hints (memcheck may then report the reuse of pooled
/// stacks described in the module docs).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn request(default: u64, _args: &[u64; 6]) -> u64 {
    default
}

/// Whether a tool that takes memcheck's requests runs this process, asked
/// once: 0 unknown, 1 no, 2 yes. memcheck answers a `MAKE_MEM_*` request
/// with -1, whereas a CPU, or valgrind running another tool (callgrind
/// counting instructions), leaves the default 0; so the requests are made
/// only under memcheck and never add to callgrind's counts.
static MEMCHECK: AtomicU8 = AtomicU8::new(0);

/// Tells memcheck that `[addr, addr + len)` is addressable memory with
/// undefined contents. Costs one relaxed load and a branch when not under
/// memcheck.
#[inline(always)]
pub(crate) fn mark_undefined(addr: usize, len: usize) {
    if MEMCHECK.load(Ordering::Relaxed) != 1 {
        mark_slow(MAKE_MEM_UNDEFINED, addr, len);
    }
}

/// Tells memcheck that `[addr, addr + len)` is addressable memory with
/// defined contents (as after `madvise(MADV_DONTNEED)`, which zeroes it).
#[inline(always)]
pub(crate) fn mark_defined(addr: usize, len: usize) {
    if MEMCHECK.load(Ordering::Relaxed) != 1 {
        mark_slow(MAKE_MEM_DEFINED, addr, len);
    }
}

#[cold]
#[inline(never)]
fn mark_slow(what: u64, addr: usize, len: usize) {
    let mut state = MEMCHECK.load(Ordering::Relaxed);
    if state == 0 {
        let yes = request(0, &[MAKE_MEM_UNDEFINED, 0, 0, 0, 0, 0]) != 0;
        state = if yes { 2 } else { 1 };
        MEMCHECK.store(state, Ordering::Relaxed);
    }
    if state == 2 {
        request(0, &[what, addr as u64, len as u64, 0, 0, 0]);
    }
}
