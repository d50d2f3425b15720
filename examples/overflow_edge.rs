//! A stack overflow at the very switch of a yield: a greenlet whose stack
//! runs out exactly at the pushes with which a relayed `yield_now` saves
//! its context must still be reported as "greenlet 'edge' overflowed its
//! stack", not die of a bare SIGSEGV (the greenlet record names the next
//! stack for the overflow handler only after those pushes).
//!
//! Only an optimised build reaches that edge: in a debug build `park`
//! writes deeper before the switch, so the overflow is met earlier. Run it
//! with `cargo run --release --example overflow_edge`: it runs one child
//! process per shift (the deepest 1 to 24 words the yield writes placed in
//! the guard page) and exits with an error if any child was not reported
//! by name. x86-64 Linux only (it places the stack pointer with inline asm).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod edge {
    use std::process::{Command, ExitCode};

    use sylvan::{Builder, spawn, yield_now};

    /// Written to every word of the probed region before `yield_now` runs.
    const CANARY: u64 = 0xA5A5_5A5A_C3C3_3C3C;

    /// Calls `yield_now` with the stack pointer at `rsp` (16-aligned, inside
    /// the running greenlet's stack, below everything live).
    ///
    /// # Safety
    ///
    /// `rsp` lies in the current stack, below the caller's frames.
    unsafe fn yield_with_rsp_at(rsp: usize) {
        extern "C" fn tramp() {
            yield_now();
        }
        // SAFETY: per contract; r12 (callee-saved, declared clobbered) keeps
        // our stack pointer across the call, which gets an aligned stack.
        unsafe {
            std::arch::asm!(
                "mov r12, rsp",
                "mov rsp, {t}",
                "call {f}",
                "mov rsp, r12",
                t = in(reg) rsp,
                f = sym tramp,
                out("r12") _,
                clobber_abi("C"),
            )
        };
    }

    /// The start of the writable mapping holding `addr` (for a greenlet's
    /// stack: one past its guard page), from /proc/self/maps.
    fn mapping_start(addr: usize) -> usize {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let range = line.split_whitespace().next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            );
            if (lo..hi).contains(&addr) {
                return lo;
            }
        }
        panic!("{addr:#x} not mapped");
    }

    #[inline(never)]
    fn fill_canary(lo: usize, hi: usize) {
        for a in (lo..hi).step_by(8) {
            // SAFETY: the caller passes an unused part of the current stack.
            unsafe { (a as *mut u64).write_volatile(CANARY) };
        }
    }

    #[inline(never)]
    fn lowest_dirty(lo: usize, hi: usize) -> usize {
        for a in (lo..hi).step_by(8) {
            // SAFETY: as in `fill_canary`.
            if unsafe { (a as *const u64).read_volatile() } != CANARY {
                return a;
            }
        }
        hi
    }

    /// One child: greenlet "edge" (64 KiB stack) measures how
    /// deep below its stack pointer a relayed `yield_now` writes, then yields
    /// with its stack pointer placed so that the deepest `SHIFT` words of
    /// those writes land in its guard page.
    fn child(shift: usize) {
        let partner = spawn(|| {
            for _ in 0..1000 {
                yield_now();
            }
        });
        let edge = Builder::new()
            .name("edge")
            .stack_size(64 << 10)
            .spawn(move || {
                yield_now();
                let here = 0u8;
                let sp = std::hint::black_box(&here) as *const u8 as usize;
                let guard_hi = mapping_start(sp);
                // Measure: writes of a yield made from `t0`.
                let t0 = (sp - 16 * 1024) & !15;
                let lo = t0 - 8 * 1024;
                fill_canary(lo, t0);
                // SAFETY: 16 KiB below our frames, inside the 64 KiB stack.
                unsafe { yield_with_rsp_at(t0) };
                let depth = t0 - lowest_dirty(lo, t0);
                assert!(depth < 8 * 1024 - 64, "yield writes {depth} bytes deep");
                // The deepest word written lands `shift` words into the guard.
                let t1 = (guard_hi + depth - 8 * shift) & !15;
                eprintln!(
                    "overflow_edge: depth {depth}, shift {shift}, t1 - guard_hi {}",
                    t1 - guard_hi
                );
                // SAFETY: above the guard page, below our frames.
                unsafe { yield_with_rsp_at(t1) };
            })
            .unwrap();
        let _ = edge.join();
        drop(partner);
    }
    pub fn main() -> ExitCode {
        if let Some(shift) = std::env::args().nth(1) {
            child(shift.parse().expect("a shift in words"));
            return ExitCode::SUCCESS;
        }
        let exe = std::env::current_exe().expect("own path");
        let mut failed = 0;
        for shift in 1..=24 {
            let out = Command::new(&exe)
                .arg(shift.to_string())
                .output()
                .expect("run a child");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let named = stderr.contains("greenlet 'edge' overflowed its stack");
            println!(
                "shift {shift:2}: {} ({})",
                if named { "named" } else { "NOT NAMED" },
                out.status
            );
            if !named {
                failed += 1;
            }
        }
        if failed > 0 {
            eprintln!("overflow_edge: {failed} of 24 overflows were not reported by name");
            return ExitCode::FAILURE;
        }
        println!("overflow_edge: all 24 overflows reported by name");
        ExitCode::SUCCESS
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() -> std::process::ExitCode {
    edge::main()
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    println!("overflow_edge: x86-64 Linux only (it places the stack pointer with inline asm)");
}
