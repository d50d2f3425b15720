//! sylvan's own switch for x86-64 Linux: resume and suspend are both one
//! indirect `jmp`.
//!
//! # The saved context
//!
//! A side that switches away (the hub resuming a greenlet, or a greenlet
//! suspending) pushes three words on its own stack and leaves its stack
//! pointer in the switch's one slot, `Switch::sp`:
//!
//! ```text
//!  high addresses
//!  | frames of the side that switched away |
//!  +---------------------------------------+
//!  | rbx                                   |  sp + 16
//!  | rbp                                   |  sp + 8
//!  | where to continue (rip)               |  sp      <- Switch::sp
//!  +---------------------------------------+
//! ```
//!
//! That is all the switch itself saves. The SysV ABI makes rbx, rbp, r12-r15
//! and rsp callee-saved; the asm block declares every other general register
//! (r12-r15 included) and every vector, mask and x87 register clobbered, so the
//! compiler keeps across the switch only the values that are live there, in
//! the frame around it. rbx and rbp cannot be declared clobbered (LLVM
//! reserves them for base and frame pointers), so they travel in the saved
//! context.
//!
//! The switch is the same instruction sequence in both directions: save ours,
//! swap the slot, restore theirs.
//!
//! ```text
//!     lea  rax, [rip + 2f]    ; where we continue
//!     push rbx
//!     push rbp
//!     push rax
//!     mov  rdx, [rdi]         ; rdi = &Switch::sp: the other side's context
//!     mov  [rdi], rsp         ; ours, for the way back
//!     mov  rcx, [rdx]         ; restore through a general register ...
//!     mov  rbp, [rdx + 8]
//!     mov  rbx, [rdx + 16]
//!     lea  rsp, [rdx + 24]    ; ... then move the stack pointer once
//!     jmp  rcx
//! 2:
//! ```
//!
//! No `call` and no `ret`: the CPU's return-address predictor sees nothing,
//! so the return addresses a greenlet pushed on its way down to `park` are
//! still on top of the predictor when the next greenlet, parked at the same
//! place, returns out of `park`. The new context is read through a general
//! register and the stack pointer moves once, at the end, with `lea rsp`: a
//! variant that popped right after loading the new stack pointer measured
//! unstable from run to run (4-11 ns per yield) when this switch was designed.
//!
//! `rsi` carries a message across: `RUN` or `UNWIND` from the resumer,
//! `SUSPENDED` or `FINISHED` back from the greenlet.
//!
//! # Body to body
//!
//! `Switch::switch_to` passes control from the running body straight to
//! another suspended one: our slot holds our resumer's context, which moves
//! to the other body's slot (it will suspend or finish to our resumer), and
//! our own context takes its place in our slot. The same save and restore
//! as above, with two more moves:
//!
//! ```text
//!     lea  rax, [rip + 2f]
//!     push rbx
//!     push rbp
//!     push rax
//!     mov  [r9], r10          ; name the other body's stack as running
//!     mov  rdx, [rdi]         ; rdi = the other body's slot: its context
//!     mov  rax, [r8]          ; r8 = our slot: our resumer's context ...
//!     mov  [rdi], rax         ; ... becomes the other body's resumer
//!     mov  [r8], rsp          ; ours, for whoever resumes us
//!     mov  rcx, [rdx]
//!     mov  rbp, [rdx + 8]
//!     mov  rbx, [rdx + 16]
//!     lea  rsp, [rdx + 24]
//!     jmp  rcx
//! 2:
//! ```
//!
//! The store through r9 is the greenlet record's note of which stack runs,
//! for the stack-overflow handler: made after the pushes, so that a push
//! that hits our guard page is still reported as our overflow.
//!
//! A body waiting in `switch_to` is resumed like a suspended one (the
//! resumer's `RUN` or `UNWIND` lands at its `2:`). The hub uses it for a yield
//! whose next greenlet it knows at once: one switch per yield instead of two.
//!
//! # The entry
//!
//! `Switch::init` writes the body closure just below the stack's top (a body
//! larger than 2 KiB is boxed and only the box goes there) and under it a
//! saved context whose rip is `sylvan_greenlet_entry`, rbp is 0 and rbx is
//! `start::<F>`:
//!
//! ```text
//!  +---------------------------------------+  <- Stack::top() (coloured)
//!  | the body closure F                    |
//!  +---------------------------------------+  <- C, aligned to 16 (or more)
//!  | start::<F>                            |  -> rbx
//!  | 0                                     |  -> rbp
//!  | sylvan_greenlet_entry                 |  -> rip      <- Switch::sp
//!  +---------------------------------------+
//! ```
//!
//! The first resume lands in `sylvan_greenlet_entry` with rsp = C and rdi =
//! the switch. It calls `start::<F>(switch, C)`, which moves the closure off
//! the stack top, runs it inside `catch_unwind`, and ends with a switch that
//! saves nothing and passes `FINISHED`. `sylvan_greenlet_entry` is a named
//! function whose unwind info marks the return address undefined
//! (`.cfi_undefined rip`), and it starts the frame-pointer chain at 0:
//! `std::backtrace`, gdb and perf (DWARF or frame-pointer call graphs) stop
//! there instead of reading past the top of the greenlet's stack. (corosensei
//! instead links the unwind info to the resumer's stack, so its backtraces run
//! on into the hub.)
//!
//! # Dropping a suspended body
//!
//! `drop_body` resumes the body with `UNWIND`: its `suspend` returns into
//! `resume_unwind` of the switch's own payload (`ForcedUnwind`, which
//! `is_unwind_payload` recognises). The body's frames unwind
//! (destructors run), the greenlet's own `catch_unwind` lets the payload
//! through, `start` catches it and finishes the body normally.

use std::arch::{asm, global_asm};
use std::cell::Cell;
use std::fmt;
use std::io::Write as _;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::stack::Stack;
use crate::unwind::ForcedUnwind;

/// Resumer -> greenlet: go on.
const RUN: usize = 0;
/// Resumer -> greenlet: unwind to the entry and finish (the body is dropped).
const UNWIND: usize = 1;
/// Greenlet -> resumer: suspended, resume me later.
const SUSPENDED: usize = 0;
/// Greenlet -> resumer: the body is over and its frames are gone.
const FINISHED: usize = 1;

/// Bodies larger than this (or aligned above 64 bytes) are boxed instead of
/// being placed on the stack, so that the stack keeps room for frames even at
/// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE).
const MAX_INLINE_BODY: usize = 2048;

/// Times `drop_body` throws the unwind into a body that catches it and
/// suspends again, before it gives up and leaks the stack.
pub(super) const MAX_FORCED_UNWINDS: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No body.
    Empty,
    /// A body is placed on the stack and has not run.
    Unstarted,
    /// The body has run and not finished: it has live frames.
    Started,
    /// The body finished; its frames are gone.
    Finished,
}

/// One greenlet's execution context.
#[repr(C)]
pub(crate) struct Switch {
    /// The saved stack pointer of whichever side is not running: the body's
    /// while it is suspended (or unstarted), its resumer's while it runs.
    /// First field: the switch addresses it as `[rdi]`.
    sp: Cell<usize>,
    phase: Cell<Phase>,
    /// The unstarted body's closure (on the stack) and how to drop it unrun.
    body: Cell<*mut u8>,
    drop_unstarted: Cell<Option<unsafe fn(*mut u8)>>,
    stack: Option<Stack>,
}

/// One switch: save this side's context on its stack, swap it with the other
/// side's in `[rdi]`, restore that one and jump to it. `rsi` carries the
/// message. The pushes are allowed because the block is not `nostack`.
macro_rules! switch {
    ($slot:expr, $msg:expr) => {{
        let reply: usize;
        asm!(
            "lea rax, [rip + 2f]",
            "push rbx",
            "push rbp",
            "push rax",
            "mov rdx, [rdi]",
            "mov [rdi], rsp",
            "mov rcx, [rdx]",
            "mov rbp, [rdx + 8]",
            "mov rbx, [rdx + 16]",
            "lea rsp, [rdx + 24]",
            "jmp rcx",
            "2:",
            in("rdi") $slot,
            inout("rsi") $msg => reply,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
        reply
    }};
}

impl Switch {
    pub(crate) const fn empty() -> Switch {
        Switch {
            sp: Cell::new(0),
            phase: Cell::new(Phase::Empty),
            body: Cell::new(ptr::null_mut()),
            drop_unstarted: Cell::new(None),
            stack: None,
        }
    }

    /// Places `body` on `stack`, ready for the first [`resume`](Self::resume).
    ///
    /// # Panics
    ///
    /// If this thread runs with a CET shadow stack (see the module docs of
    /// `switch`): the switch would fault at its first return.
    ///
    /// # Safety
    ///
    /// `self` must not move from this call until the body has finished or the
    /// `Switch` is dropped, and `self` has no body yet. `body` must not unwind
    /// (except to let the unwind started by [`drop_body`](Self::drop_body)
    /// through).
    pub(crate) unsafe fn init<F: FnOnce() + 'static>(&mut self, stack: Stack, body: F) {
        debug_assert_eq!(self.phase.get(), Phase::Empty);
        refuse_shadow_stack();
        if mem::size_of::<F>() > MAX_INLINE_BODY || mem::align_of::<F>() > 64 {
            // Called through `dyn`, the closure runs in place in its box
            // instead of being moved onto the stack first.
            let boxed: Box<dyn FnOnce()> = Box::new(body);
            // SAFETY: the caller's contract, passed on unchanged.
            unsafe { self.place(stack, boxed) }
        } else {
            // SAFETY: the caller's contract, passed on unchanged.
            unsafe { self.place(stack, body) }
        }
    }

    /// [`init`](Self::init) for a body that fits the top of the stack.
    ///
    /// # Safety
    ///
    /// As for `init`; and `size_of::<F>() <= MAX_INLINE_BODY`,
    /// `align_of::<F>() <= 64`.
    unsafe fn place<F: FnOnce() + 'static>(&mut self, stack: Stack, body: F) {
        let align = mem::align_of::<F>().max(16);
        let closure = (stack.top() - mem::size_of::<F>()) & !(align - 1);
        let frame = closure - 3 * mem::size_of::<usize>();
        debug_assert!(frame >= stack.limit() + MAX_INLINE_BODY);
        // SAFETY: [frame, top) lies in the stack's read-write part: `top()` is
        // below the stack's metadata, and `frame` is at most
        // MAX_INLINE_BODY + 64 + 24 bytes below it, far above `limit()` (the
        // smallest stack is 16 KiB). Nothing runs on the stack yet, so nothing
        // else uses that memory, and both addresses are aligned for what is
        // written there (`closure` to `align`, `frame` to 8).
        unsafe {
            ptr::write(closure as *mut F, body);
            ptr::write(
                frame as *mut [usize; 3],
                [
                    sylvan_greenlet_entry as *const () as usize,
                    0,
                    start::<F> as *const () as usize,
                ],
            );
        }
        self.sp.set(frame);
        self.body.set(closure as *mut u8);
        self.drop_unstarted.set(Some(drop_unstarted::<F>));
        self.stack = Some(stack);
        self.phase.set(Phase::Unstarted);
    }

    /// Runs the body until it suspends (`false`) or finishes (`true`).
    ///
    /// # Safety
    ///
    /// The switch was initialised, its body has not finished, and the caller
    /// is not that body.
    #[inline(always)]
    pub(crate) unsafe fn resume(&self) -> bool {
        // SAFETY: the caller's contract.
        unsafe { self.resume_with(RUN) }
    }

    /// Resumes with a message for the body.
    ///
    /// # Safety
    ///
    /// As for [`resume`](Self::resume).
    #[inline(always)]
    unsafe fn resume_with(&self, msg: usize) -> bool {
        // SAFETY: `sp` holds the body's saved context: the frame `place`
        // wrote, or the one its last `suspend` pushed (the body is not
        // finished and is not the caller, so it is not running). The asm
        // saves our context in the same layout before it jumps, declares every
        // register it does not restore clobbered, and comes back at `2:` with
        // rsp, rbx and rbp as they were, when the body suspends or finishes.
        let reply = unsafe { switch!(self.sp.as_ptr(), msg) };
        reply == FINISHED
    }

    /// Suspends the running body and returns to whoever resumed it.
    ///
    /// # Safety
    ///
    /// Must be called on this switch's own stack, while it runs.
    #[inline(always)]
    pub(crate) unsafe fn suspend(&self) {
        // SAFETY: the body runs, so `sp` holds its resumer's context, saved by
        // `resume_with` in the layout the asm restores; the resumer continues
        // at its `2:` and comes back to ours the same way.
        let msg = unsafe { switch!(self.sp.as_ptr(), SUSPENDED) };
        if msg != RUN {
            forced_unwind();
        }
    }

    /// Passes control from this running body straight to `to`'s suspended
    /// body, without going back to the resumer: `to` takes over this body's
    /// resumer (its next suspend or its end goes there), and this body waits
    /// as if suspended, until a [`resume`](Self::resume) or another
    /// `switch_to` lands it here.
    ///
    /// One switch instead of a suspend and a resume: the resumer's context
    /// moves from our slot to `to`'s, ours goes in our slot, and `to`'s
    /// context is restored as `switch!` restores one. rdi holds `to`'s slot,
    /// which is the address of `to` itself (the slot is the first field), as
    /// `sylvan_greenlet_entry` expects should `to` not have started yet.
    ///
    /// `mark` is stored at `at` once our context is pushed, just before the
    /// jump: the greenlet record uses it to name `to`'s stack as the running
    /// one for the overflow handler. Named any earlier, a stack overflow hit
    /// by those pushes (on our guard page) would be taken for a fault
    /// outside the running greenlet's stack and reach the default handler
    /// unnamed.
    ///
    /// # Safety
    ///
    /// Called by the body of `self`, on its own stack, while it runs; `to`
    /// is another switch of this thread, initialised, neither running nor
    /// finished, and stays in place until its body finishes; `at` is valid
    /// for a write of a `usize`.
    #[inline(always)]
    #[cfg_attr(
        sylvan_corosensei,
        allow(dead_code, reason = "only the active switch's is called")
    )]
    pub(crate) unsafe fn switch_to(&self, to: &Switch, at: *mut usize, mark: usize) {
        let msg: usize;
        // SAFETY: we run, so our slot holds our resumer's context; `to` is
        // suspended (or unstarted), so its slot holds its context, in the
        // layout `switch!` writes (or `place` wrote). The asm saves ours in
        // that layout before it moves the slots, declares every register it
        // does not restore clobbered, and comes back at `2:` with rsp, rbx
        // and rbp as they were, when a resume or a `switch_to` restores the
        // context it left in our slot.
        unsafe {
            asm!(
                "lea rax, [rip + 2f]",
                "push rbx",
                "push rbp",
                "push rax",
                "mov [r9], r10",
                "mov rdx, [rdi]",
                "mov rax, [r8]",
                "mov [rdi], rax",
                "mov [r8], rsp",
                "mov rcx, [rdx]",
                "mov rbp, [rdx + 8]",
                "mov rbx, [rdx + 16]",
                "lea rsp, [rdx + 24]",
                "jmp rcx",
                "2:",
                in("rdi") to.sp.as_ptr(),
                in("r8") self.sp.as_ptr(),
                in("r9") at,
                in("r10") mark,
                inout("rsi") RUN => msg,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                clobber_abi("C"),
            )
        };
        if msg != RUN {
            forced_unwind();
        }
    }

    /// Whether `init` was called and the body has not been dropped yet.
    // Only the greenlet record asks, and it uses corosensei's switch when
    // `sylvan_corosensei` is set.
    #[cfg_attr(sylvan_corosensei, allow(dead_code))]
    pub(crate) fn is_init(&self) -> bool {
        self.phase.get() != Phase::Empty
    }

    /// Whether the body has run at least once and not finished.
    pub(crate) fn is_mid_body(&self) -> bool {
        self.phase.get() == Phase::Started
    }

    /// Hints the CPU to fetch the line holding the suspended body's saved
    /// context, the first thing its next resume loads.
    #[inline]
    #[cfg_attr(
        sylvan_corosensei,
        allow(dead_code, reason = "only the active switch's is called")
    )]
    pub(crate) fn prefetch_context(&self) {
        if self.phase.get() == Phase::Started {
            // SAFETY: prefetching is a hint that never faults or changes
            // memory; a started body's `sp` points into its stack.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    self.sp.get() as *const i8,
                )
            };
        }
    }

    /// Takes the stack back after the body finished, or before it started (the
    /// body is then dropped without running). `None` while the body is
    /// suspended mid-way, or when there is no body.
    pub(crate) fn take_stack(&mut self) -> Option<Stack> {
        match self.phase.get() {
            Phase::Empty | Phase::Started => None,
            Phase::Finished => {
                self.phase.set(Phase::Empty);
                self.stack.take()
            }
            Phase::Unstarted => self.drop_unstarted(),
        }
    }

    /// Drops the body and the stack. A body suspended mid-way is unwound
    /// first (its destructors run).
    pub(crate) fn drop_body(&mut self) {
        match self.phase.get() {
            Phase::Empty => {}
            // Leaves the switch empty before user destructors run.
            Phase::Unstarted => drop(self.drop_unstarted()),
            Phase::Finished => {
                self.phase.set(Phase::Empty);
                self.stack = None;
            }
            Phase::Started => {
                let mut throws = 0;
                // SAFETY: the body is suspended mid-way (started, not
                // finished) and we are not it: it cannot run while `&mut self`
                // is held by someone else.
                while !unsafe { self.resume_with(UNWIND) } {
                    throws += 1;
                    if throws == MAX_FORCED_UNWINDS {
                        leak_stuck_body(self.stack.take());
                        break;
                    }
                }
                self.phase.set(Phase::Empty);
                self.stack = None;
            }
        }
    }

    /// Drops an unstarted body where `place` put it, and returns its stack.
    ///
    /// The switch is emptied before the closure's destructors run: they are
    /// user code, which may reach the hub, drop this very switch, or panic;
    /// they then find nothing left to drop twice. The stack the closure lies
    /// on is held here until they are done, and `self` is not touched after.
    fn drop_unstarted(&mut self) -> Option<Stack> {
        self.phase.set(Phase::Empty);
        let stack = self.stack.take();
        let body = self.body.replace(ptr::null_mut());
        if let Some(drop) = self.drop_unstarted.take() {
            // SAFETY: the body never ran, so the closure `place` wrote at
            // `body` is still there, initialised, on `stack`, which we hold;
            // `drop` is the `drop_unstarted::<F>` for its type, and `take`
            // makes this the only drop.
            unsafe { drop(body) };
        }
        stack
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.drop_body();
    }
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("phase", &self.phase.get())
            .finish_non_exhaustive()
    }
}

/// Drops the closure of type `F` at `body`.
///
/// # Safety
///
/// `body` points to an initialised `F` that is never used again.
unsafe fn drop_unstarted<F>(body: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { ptr::drop_in_place(body.cast::<F>()) }
}

#[cold]
#[inline(never)]
fn forced_unwind() -> ! {
    panic::resume_unwind(Box::new(ForcedUnwind))
}

#[cold]
#[inline(never)]
fn leak_stuck_body(stack: Option<Stack>) {
    // Not `eprintln!`, which panics when stderr is closed.
    let _ = writeln!(
        std::io::stderr(),
        "sylvan: a greenlet dropped while suspended caught its unwind and suspended again \
         {MAX_FORCED_UNWINDS} times; its stack is leaked"
    );
    mem::forget(stack);
}

/// Where a body starts: called by `sylvan_greenlet_entry` on the body's stack.
///
/// # Safety
///
/// Called only by `sylvan_greenlet_entry`, on the first resume of a switch
/// set up by `place::<F>`: `switch` is that switch and `body` the closure
/// `place` wrote.
unsafe extern "C" fn start<F: FnOnce()>(switch: *const Switch, body: *mut F) -> ! {
    // SAFETY: `body` is the closure `place` wrote, read exactly once: from now
    // on the phase says `Started`, so nothing drops it in place.
    let body = unsafe { body.read() };
    // SAFETY: the switch outlives its body (the caller of `init` keeps it in
    // place); only `Cell`s are touched through it.
    unsafe { (*switch).phase.set(Phase::Started) };
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(body)) {
        if !payload.is::<ForcedUnwind>() {
            body_unwound();
        }
        drop(payload);
    }
    // SAFETY: as above.
    unsafe { (*switch).phase.set(Phase::Finished) };
    // SAFETY: the body is over and every value of this frame is dropped: the
    // stack may be reused as soon as we leave it. `sp` holds the resumer's
    // context (we run, so it resumed us), which this restores, passing
    // FINISHED. It never comes back.
    unsafe {
        asm!(
            "mov rdx, [rdi]",
            "mov rcx, [rdx]",
            "mov rbp, [rdx + 8]",
            "mov rbx, [rdx + 16]",
            "lea rsp, [rdx + 24]",
            "jmp rcx",
            in("rdi") (*switch).sp.as_ptr(),
            in("rsi") FINISHED,
            options(noreturn),
        )
    }
}

#[cold]
#[inline(never)]
fn body_unwound() -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "sylvan: a greenlet body unwound into the switch; aborting"
    );
    std::process::abort()
}

// The bottom frame of every greenlet stack, `sylvan_greenlet_entry`.
//
// The first resume jumps here with rsp at the closure `place` wrote (16-byte
// aligned), rdi = the switch, rbx = `start::<F>` and rbp = 0. It calls
// `start::<F>(rdi, rsp)`, which never returns. Its unwind info marks the
// return address undefined, so unwinders (std's backtrace, gdb, perf) stop
// here; rbp = 0 ends the frame-pointer chain. The `ud2` keeps the return
// address of the call inside the function, as unwinders expect. The symbol
// is global (for the reference below, from another codegen unit) but hidden:
// it is not exported from a shared library.
global_asm!(
    ".pushsection .text.sylvan_greenlet_entry,\"ax\",@progbits",
    ".globl sylvan_greenlet_entry",
    ".hidden sylvan_greenlet_entry",
    ".type sylvan_greenlet_entry,@function",
    ".balign 16",
    "sylvan_greenlet_entry:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "mov rsi, rsp",
    "call rbx",
    "ud2",
    ".cfi_endproc",
    ".size sylvan_greenlet_entry, . - sylvan_greenlet_entry",
    ".popsection",
);

unsafe extern "C" {
    /// See the `global_asm!` above: only ever jumped to by the switch, never
    /// called.
    fn sylvan_greenlet_entry() -> !;
}

/// Panics if this process runs with CET shadow stacks, which the switch does
/// not support. Reads `/proc` once per process.
#[inline]
fn refuse_shadow_stack() {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => {}
        0 => {
            let active = shadow_stack_active();
            STATE.store(1 + u8::from(active), Ordering::Relaxed);
            if active {
                shadow_stack_unsupported()
            }
        }
        _ => shadow_stack_unsupported(),
    }
}

/// Whether the kernel reports a shadow stack for this thread
/// (`x86_Thread_features: shstk` in `/proc/thread-self/status`, Linux 6.6+).
#[cold]
pub(crate) fn shadow_stack_active() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return false;
    };
    status
        .lines()
        .filter_map(|line| line.strip_prefix("x86_Thread_features:"))
        .any(|features| features.split_whitespace().any(|f| f == "shstk"))
}

#[cold]
#[inline(never)]
fn shadow_stack_unsupported() -> ! {
    panic!(
        "sylvan: this process runs with CET shadow stacks (x86_Thread_features: shstk), which \
         sylvan's greenlet switch does not support: build without shadow-stack support \
         (no `-z force-shstk`, no `-Z cf-protection`)"
    )
}
