//! The context switch: the one file that touches `corosensei`.
//!
//! The rest of the crate sees a small interface: [`Switch::init`] places a
//! body on a stack, [`Switch::resume`] runs it until it suspends or finishes,
//! [`Switch::suspend`] goes back to whoever resumed it. Resume is called only
//! from the thread's own stack (the hub loop), never from another greenlet, so
//! every suspend returns to the hub.
//!
//! The body given to [`Switch::init`] must not unwind: `greenlet.rs` wraps it in
//! `catch_unwind`, so nothing ever unwinds across the switch.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::ptr;

use corosensei::stack::StackPointer;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::stack::Stack;

/// A pooled stack as corosensei sees it.
struct SwitchStack(Stack);

// SAFETY: `Stack` owns a mapping whose usable part lies between `limit()` and
// `top()` with a PROT_NONE guard page directly below `limit()`; `top()` is
// 16-byte aligned (corosensei's STACK_ALIGNMENT on every supported target)
// and the mapping stays valid for as long as the `SwitchStack` lives.
unsafe impl corosensei::stack::Stack for SwitchStack {
    #[inline]
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.0.top()).expect("stack top is never null")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.0.limit()).expect("stack limit is never null")
    }
}

type Coro = Coroutine<(), (), (), SwitchStack>;

/// One greenlet's execution context.
pub(crate) struct Switch {
    coro: Option<Coro>,
    /// The coroutine's yielder, recorded by the body when it first runs. It
    /// lives on the coroutine's own stack for the coroutine's whole life.
    yielder: Cell<*const Yielder<(), ()>>,
}

impl Switch {
    pub(crate) const fn empty() -> Switch {
        Switch {
            coro: None,
            yielder: Cell::new(ptr::null()),
        }
    }

    /// Places `body` on `stack`, ready for the first [`resume`](Self::resume).
    ///
    /// # Safety
    ///
    /// `self` must not move from this call until the body has finished or the
    /// `Switch` is dropped: the body records the yielder through a pointer to
    /// `self`. `body` must not unwind.
    pub(crate) unsafe fn init(&mut self, stack: Stack, body: impl FnOnce() + 'static) {
        let slot: *const Cell<*const Yielder<(), ()>> = &self.yielder;
        let coro =
            Coroutine::with_stack(SwitchStack(stack), move |yielder: &Yielder<(), ()>, ()| {
                // SAFETY: the caller of `init` keeps `self` (and so `slot`) in place
                // until the body has finished, which is after this line.
                unsafe { (*slot).set(yielder) };
                body();
            });
        self.coro = Some(coro);
    }

    /// Runs the body until it suspends (`false`) or finishes (`true`).
    ///
    /// # Safety
    ///
    /// Must be called from the thread's own stack (not from inside another
    /// switch), on an initialised switch whose body has not finished.
    #[inline(always)]
    pub(crate) unsafe fn resume(&mut self) -> bool {
        // SAFETY: the caller guarantees the switch was initialised.
        let coro = unsafe { self.coro.as_mut().unwrap_unchecked() };
        match coro.resume(()) {
            CoroutineResult::Yield(()) => false,
            CoroutineResult::Return(()) => true,
        }
    }

    /// Suspends the running body and returns to the hub that resumed it.
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

    /// Whether `init` was called and the body has not been dropped yet.
    pub(crate) fn is_init(&self) -> bool {
        self.coro.is_some()
    }

    /// Whether the body has run at least once and not finished.
    pub(crate) fn is_mid_body(&self) -> bool {
        self.coro.as_ref().is_some_and(|c| c.started() && !c.done())
    }

    /// Takes the stack back after the body finished, or before it started (the
    /// body is then dropped without running). `None` while the body is
    /// suspended mid-way.
    pub(crate) fn take_stack(&mut self) -> Option<Stack> {
        let mut coro = self.coro.take()?;
        if coro.started() && !coro.done() {
            self.coro = Some(coro);
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
        self.coro = None;
    }
}
