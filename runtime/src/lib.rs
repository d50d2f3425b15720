//! The greenlet core of [sylvan](https://docs.rs/sylvan): machine stacks and
//! their pool, the context switch, and the greenlet record with its outcome.
//!
//! This crate knows nothing of IO, time or scheduling: the per-thread hub in
//! `sylvan-hub` decides *which* greenlet runs; this crate makes it run, suspends
//! it, unwinds it when it is killed and records how it ended. Most users want
//! the `sylvan` facade instead.
//!
//! * [`stack`]: guarded, coloured `mmap` stacks and a bounded [`stack::StackPool`].
//! * [`overflow`]: the SIGSEGV handler that turns a guard-page hit into
//!   "greenlet 'name' overflowed its stack of N KiB".
//! * [`Core`]: one greenlet's switch state, lifecycle state and outcome.
//! * [`Throw`], [`is_unwind_payload`]: the kill and timeout unwinds.

pub mod overflow;
pub mod stack;

mod greenlet;
mod switch;
mod unwind;
mod valgrind;

pub use greenlet::{Core, Outcome, Panic, Resumed, State, drop_payload, payload_message};
#[doc(hidden)]
pub use switch::impls as switch_impls;
pub use unwind::{GreenletExit, Throw, TimeoutUnwind, is_unwind_payload, throw};
