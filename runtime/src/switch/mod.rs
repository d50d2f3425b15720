//! The context switch: the one place that saves and restores machine
//! registers.
//!
//! # Contract
//!
//! The rest of the crate sees one small type, `Switch`, with the same
//! interface on every platform:
//!
//! * `init(stack, body)` places a body on a [`Stack`](crate::stack::Stack),
//!   ready for its first resume;
//! * `resume()` runs the body until it suspends (`false`) or finishes
//!   (`true`);
//! * `suspend()`, called by the body on its own stack, goes back to whoever
//!   resumed it;
//! * `is_init`, `is_mid_body`, `take_stack` and `drop_body` let the greenlet
//!   record hand the stack back to the pool, or drop a body that never ran or
//!   is suspended mid-way (a suspended body is unwound first: its destructors
//!   run).
//!
//! The body must not unwind: `greenlet.rs` wraps it in `catch_unwind`, so
//! **nothing ever unwinds across the switch**. A kill or a timeout is thrown
//! by the greenlet itself, on its own stack, after `suspend` has returned
//! into it. The one exception is a body dropped while suspended: `suspend`
//! then returns into an unwind with a payload of the switch's own
//! (`ForcedUnwind`, which `is_unwind_payload` recognises), which
//! the body's `catch_unwind` must let through (re-raise) and which the
//! switch's own entry catches before it finishes the body.
//!
//! Two implementations sit behind that interface:
//!
//! | target | switch | file |
//! |--------|--------|------|
//! | x86-64 Linux | sylvan's own: resume **and** suspend by indirect `jmp` | `x86_64.rs` |
//! | every other target, or x86-64 with `--cfg sylvan_corosensei` | [`corosensei`](https://docs.rs/corosensei) (resume by `call`, suspend by `ret`) | `corosensei.rs` |
//!
//! Choosing between two implementations is not additive, so it is a `--cfg`
//! flag rather than a cargo feature:
//!
//! ```text
//! RUSTFLAGS="--cfg sylvan_corosensei" cargo test
//! ```
//!
//! # Why a switch of our own
//!
//! The CPU predicts the target of every `ret` from a small stack of return
//! addresses that each `call` pushes. corosensei enters a coroutine with a
//! call-like switch and leaves it with a return-like one; that keeps the
//! predictor in step only when the suspend sits inline in the coroutine's own
//! loop. Real greenlets yield from depth (user code -> `read` -> `park` ->
//! switch), and then every yield costs two mispredicted returns, about 7 ns
//! each on the machines we measured: more than the rest of a yield put
//! together. Resuming and suspending both by an indirect `jmp` pushes and pops
//! nothing, so when two greenlets block in the same place, the return
//! addresses that one greenlet's calls pushed are exactly the ones the next
//! greenlet's returns need. `benches/switch.rs` measures both switches side by
//! side (`scripts/bench-switch.sh`), with a bare ring scheduler as the floor.
//!
//! What to expect: the saving is largest when greenlets block at the same
//! code (a pool of workers running one function, both sides of a
//! ping-pong): there a yield from depth costs what a yield from the top
//! does. Greenlets that block through *different* call chains still
//! mispredict the returns that differ, with either switch, since the
//! predictor holds the chain of whichever greenlet ran last; there the own
//! switch saves less (W1d's "different chains" line).
//!
//! # What the switch does not do
//!
//! * **Floating-point control state is per thread, not per greenlet.** The
//!   SysV ABI makes the MXCSR control bits (rounding mode, flush-to-zero,
//!   exception masks) and the x87 control word callee-saved, but neither
//!   switch saves them: a greenlet that changes the rounding mode changes it
//!   for every greenlet of its thread until it changes it back (corosensei
//!   behaves the same). Restore them before any call that may block.
//! * **CET shadow stacks are not supported.** With a shadow stack the CPU
//!   checks every `ret` against a second, kernel-managed stack of return
//!   addresses, one per thread; a switch that moves between machine stacks
//!   without switching shadow stacks faults at the first return. The build
//!   refuses `-Z cf-protection` (`runtime/build.rs` fails with a message
//!   naming it), so sylvan's objects never carry the GNU property note that
//!   marks a binary shadow-stack capable, and without it the kernel and glibc
//!   do not enable shadow stacks for the process. If one is active anyway
//!   (forced with the linker's `-z force-shstk`), the first greenlet to start
//!   on x86-64 Linux panics with a message saying so (a default-size one when
//!   the hub first runs it, so out of the call in which main blocked; one
//!   with its own stack size in its spawn), found by reading the
//!   thread's `x86_Thread_features` in `/proc/thread-self/status` once per
//!   process. Indirect-branch tracking (IBT) is refused by the same build
//!   check: the switch's jump targets carry no `endbr64`.
//! * **No register other than the stack pointer and what the ABI calls
//!   callee-saved survives a switch**, and the direction flag must be clear;
//!   both hold at every Rust call boundary, which is where the switch sits.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86_64;

mod corosensei;

#[cfg(test)]
mod tests;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei)))]
pub(crate) use self::x86_64::Switch;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei))))]
pub(crate) use self::corosensei::Switch;

/// Both switch implementations behind one trait, for benchmarks and tests
/// that compare them in one run. **Not a public API**: it may change in any
/// release.
///
/// [`Core`](crate::Core) always uses [`Active`](crate::switch_impls::Active);
/// the others are compiled only so that `benches/switch.rs` can set them side
/// by side.
#[doc(hidden)]
pub mod impls {
    use std::fmt;

    use crate::stack::Stack;

    /// A bare switch: a body on a stack, resumed and suspended with nothing
    /// around it (no greenlet record, no outcome, no overflow bookkeeping).
    pub trait RawSwitch: fmt::Debug {
        /// Names the switch in benchmark labels, e.g. `"own switch"`.
        const LABEL: &'static str;

        /// A switch with no body.
        fn new() -> Self;

        /// Places `body` on `stack`; it runs at the first
        /// [`resume`](Self::resume).
        ///
        /// # Safety
        ///
        /// `self` must not move until the body has finished or `self` is
        /// dropped, and `init` is called at most once. `body` must not
        /// unwind, except by letting the unwind that dropping a suspended
        /// switch starts inside [`suspend`](Self::suspend) pass through.
        unsafe fn init(&mut self, stack: Stack, body: impl FnOnce() + 'static);

        /// Runs the body until it suspends (`false`) or finishes (`true`).
        ///
        /// # Safety
        ///
        /// `self` was initialised, its body has not finished, and the caller
        /// is not that body.
        unsafe fn resume(&self) -> bool;

        /// Goes back to whoever resumed the body.
        ///
        /// # Safety
        ///
        /// Called by the body of `self`, on its own stack, while it runs.
        unsafe fn suspend(&self);

        /// Whether the body has run and not finished.
        fn is_mid_body(&self) -> bool;

        /// The stack of a finished or unstarted body (an unstarted body is
        /// dropped unrun); `None` while the body is suspended mid-way.
        fn take_stack(&mut self) -> Option<Stack>;

        /// Drops the body and its stack, unwinding a suspended body first.
        fn drop_body(&mut self);
    }

    macro_rules! raw_switch {
        ($(#[$attr:meta])* $name:ident, $inner:path, $label:literal) => {
            $(#[$attr])*
            #[derive(Debug)]
            pub struct $name($inner);

            $(#[$attr])*
            impl RawSwitch for $name {
                const LABEL: &'static str = $label;

                fn new() -> Self {
                    $name(<$inner>::empty())
                }

                unsafe fn init(&mut self, stack: Stack, body: impl FnOnce() + 'static) {
                    // SAFETY: the caller upholds the contract, which is the
                    // inner switch's own.
                    unsafe { self.0.init(stack, body) }
                }

                #[inline(always)]
                unsafe fn resume(&self) -> bool {
                    // SAFETY: as for `init`: the same contract.
                    unsafe { self.0.resume() }
                }

                #[inline(always)]
                unsafe fn suspend(&self) {
                    // SAFETY: as for `init`: the same contract.
                    unsafe { self.0.suspend() }
                }

                fn is_mid_body(&self) -> bool {
                    self.0.is_mid_body()
                }

                fn take_stack(&mut self) -> Option<Stack> {
                    self.0.take_stack()
                }

                fn drop_body(&mut self) {
                    self.0.drop_body()
                }
            }
        };
    }

    raw_switch!(
        /// sylvan's own x86-64 switch (resume and suspend by `jmp`).
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        Own,
        super::x86_64::Switch,
        "own switch"
    );

    raw_switch!(
        /// The portable switch on `corosensei`.
        Corosensei,
        super::corosensei::Switch,
        "corosensei switch"
    );

    /// The switch that [`Core`](crate::Core) uses in this build.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei)))]
    pub type Active = Own;

    /// The switch that [`Core`](crate::Core) uses in this build.
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei))))]
    pub type Active = Corosensei;
}
