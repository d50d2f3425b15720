//! Hints for valgrind's memcheck, no-ops on real hardware.
//!
//! memcheck follows the stack pointer: memory a greenlet's frames leave
//! when they return becomes "no access" until the stack pointer comes down
//! over it again. A pooled stack reused by the next greenlet is then written
//! from outside (the switch places the new body and its first frame below
//! the top, from the hub's stack), which memcheck would report as invalid
//! writes. [`mark_undefined`] tells it the memory is usable again, with
//! undefined contents, as fresh stack memory is.
//!
//! A client request is a magic instruction sequence that valgrind's JIT
//! recognises and that does nothing on a real CPU (rotations of a register
//! by a total of 128 bits and an `xchg` of a register with itself). The
//! sequence and the request numbers are valgrind's documented client
//! request ABI (`valgrind.h`, `memcheck.h`).

use std::sync::atomic::{AtomicU8, Ordering};

/// `VG_USERREQ__RUNNING_ON_VALGRIND`.
const RUNNING_ON_VALGRIND: u64 = 0x1001;
/// `VG_USERREQ__MAKE_MEM_UNDEFINED`: memcheck's tool base (`'M'`, `'C'`) + 1.
const MAKE_MEM_UNDEFINED: u64 = ((b'M' as u64) << 24 | (b'C' as u64) << 16) + 1;

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

/// Whether this process runs under valgrind, asked once: 0 unknown,
/// 1 no, 2 yes.
static ON_VALGRIND: AtomicU8 = AtomicU8::new(0);

#[inline]
fn on_valgrind() -> bool {
    match ON_VALGRIND.load(Ordering::Relaxed) {
        0 => {
            let yes = request(0, &[RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0;
            ON_VALGRIND.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// Tells memcheck that `[addr, addr + len)` is addressable memory with
/// undefined contents. Costs one relaxed load when not under valgrind.
#[inline]
pub(crate) fn mark_undefined(addr: usize, len: usize) {
    if on_valgrind() {
        request(0, &[MAKE_MEM_UNDEFINED, addr as u64, len as u64, 0, 0, 0]);
    }
}
