//! The portable switch, on `corosensei`: used on every target but x86-64
//! Linux, and there too with `--cfg sylvan_corosensei`.
//!
//! corosensei resumes a coroutine with a call-like switch and suspends it with
//! a return-like one, and links the coroutine's stack to its resumer's for the
//! unwinder, so a backtrace taken inside a greenlet continues into the hub.
//! Dropping a suspended coroutine force-unwinds it with corosensei's own
//! payload, which the body's `catch_unwind` lets through.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem;
use std::num::NonZeroUsize;
use std::ptr;

use corosensei::stack::StackPointer;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::stack::Stack;

/// Bodies larger than this are boxed: corosensei moves the coroutine's
/// closure (the body plus a pointer) through a stack slot of at most 1 KiB.
const MAX_INLINE_BODY: usize = 512;

/// A pooled stack as corosensei sees it.
struct SwitchStack(Stack);

// SAFETY: `Stack` owns a mapping from `guard_lo()` to above `top()`: a
// PROT_NONE guard page, then the usable part from `Stack::limit()` up; the
// trait's `limit` is the mapping's bottom, guard page included, as the trait
// asks. `top()` is 16-byte aligned (corosensei's STACK_ALIGNMENT on every
// supported target), and so is `guard_lo()` (page-aligned); the mapping stays
// valid for as long as the `SwitchStack` lives.
unsafe impl corosensei::stack::Stack for SwitchStack {
    #[inline]
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.0.top()).expect("stack top is never null")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.0.guard_lo()).expect("stack limit is never null")
    }
}

type Coro = Coroutine<(), (), (), SwitchStack>;

/// One greenlet's execution context.
pub(crate) struct Switch {
    /// The coroutine. Only `init`, `resume`, `take_stack` and `drop_body`
    /// touch it mutably, and never while another of them runs: `resume` is
    /// never called by the body it resumes.
    coro: UnsafeCell<Option<Coro>>,
    /// The coroutine's yielder, recorded by the body when it first runs. It
    /// lives on the coroutine's own stack for the coroutine's whole life.
    yielder: Cell<*const Yielder<(), ()>>,
}

impl Switch {
    pub(crate) const fn empty() -> Switch {
        Switch {
            coro: UnsafeCell::new(None),
            yielder: Cell::new(ptr::null()),
        }
    }

    /// Places `body` on `stack`, ready for the first [`resume`](Self::resume).
    ///
    /// # Safety
    ///
    /// `self` must not move from this call until the body has finished or the
    /// `Switch` is dropped: the body records the yielder through a pointer to
    /// `self`. `body` must not unwind (except to let a forced unwind through).
    pub(crate) unsafe fn init<F: FnOnce() + 'static>(&mut self, stack: Stack, body: F) {
        // corosensei refuses (panics on) a coroutine closure over 1 KiB: a
        // body that captured more is boxed.
        if mem::size_of::<F>() > MAX_INLINE_BODY || mem::align_of::<F>() > 16 {
            let body: Box<dyn FnOnce()> = Box::new(body);
            // SAFETY: the caller's contract.
            return unsafe { self.init_inline(stack, body) };
        }
        // SAFETY: the caller's contract.
        unsafe { self.init_inline(stack, body) }
    }

    /// `init` for a body small enough to travel inside the coroutine.
    ///
    /// # Safety
    ///
    /// As [`init`](Self::init).
    unsafe fn init_inline(&mut self, stack: Stack, body: impl FnOnce() + 'static) {
        let slot: *const Cell<*const Yielder<(), ()>> = &self.yielder;
        let coro =
            Coroutine::with_stack(SwitchStack(stack), move |yielder: &Yielder<(), ()>, ()| {
                // SAFETY: the caller of `init` keeps `self` (and so `slot`) in place
                // until the body has finished, which is after this line.
                unsafe { (*slot).set(yielder) };
                body();
            });
        *self.coro.get_mut() = Some(coro);
    }

    /// Runs the body until it suspends (`false`) or finishes (`true`).
    ///
    /// # Safety
    ///
    /// The switch was initialised, its body has not finished, and the caller
    /// is not that body.
    #[inline(always)]
    pub(crate) unsafe fn resume(&self) -> bool {
        // SAFETY: the caller is not the body, so no other reference into
        // `coro` is live (the body only touches `yielder`), and the switch
        // was initialised, so the option is `Some`.
        let coro = unsafe { (*self.coro.get()).as_mut().unwrap_unchecked() };
        match coro.resume(()) {
            CoroutineResult::Yield(()) => false,
            CoroutineResult::Return(()) => true,
        }
    }

    /// Suspends the running body and returns to whoever resumed it.
    ///
    /// # Safety
    ///
    /// Must be called on this switch's own stack, while it runs.
    #[inline(always)]
    pub(crate) unsafe fn suspend(&self) {
        // SAFETY: the body is running, so it has recorded its yielder, which
        // lives on this very stack.
        unsafe { (*self.yielder.get()).suspend(()) }
    }

    fn coro(&self) -> Option<&Coro> {
        // SAFETY: a shared look at the coroutine's flags; `resume` holds the
        // only mutable reference, and only while the body runs, when nothing
        // outside the body calls into this switch.
        unsafe { (*self.coro.get()).as_ref() }
    }

    /// Whether `init` was called and the body has not been dropped yet.
    pub(crate) fn is_init(&self) -> bool {
        self.coro().is_some()
    }

    /// Whether the body has run at least once and not finished.
    pub(crate) fn is_mid_body(&self) -> bool {
        self.coro().is_some_and(|c| c.started() && !c.done())
    }

    /// Does nothing: corosensei keeps the saved context private.
    #[inline]
    #[cfg_attr(
        all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei)),
        allow(dead_code, reason = "only the active switch's is called")
    )]
    pub(crate) fn prefetch_context(&self) {}

    /// Takes the stack back after the body finished, or before it started (the
    /// body is then dropped without running). `None` while the body is
    /// suspended mid-way.
    pub(crate) fn take_stack(&mut self) -> Option<Stack> {
        let slot = self.coro.get_mut();
        let mut coro = slot.take()?;
        if coro.started() && !coro.done() {
            *slot = Some(coro);
            return None;
        }
        // Not started: this drops the initial closure without running it.
        // Done: a no-op.
        coro.force_unwind();
        Some(coro.into_stack().0)
    }

    /// Drops the body and stack. A body suspended mid-way is force-unwound by
    /// corosensei (its destructors run).
    pub(crate) fn drop_body(&mut self) {
        *self.coro.get_mut() = None;
    }
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("init", &self.is_init())
            .field("mid_body", &self.is_mid_body())
            .finish_non_exhaustive()
    }
}
