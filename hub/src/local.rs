//! Greenlet-local storage: gevent's `gevent.local.local`, shaped like
//! `std::thread_local!`.
//!
//! A `thread_local!` is shared by every greenlet of its thread. A
//! [`GreenletLocal`] gives each greenlet (main included) its own value,
//! made by the initializer on the greenlet's first access and dropped when
//! the greenlet ends, in that greenlet, whether it returned, panicked or
//! was killed.

use std::any::Any;
use std::cell::{OnceCell, RefCell};
use std::mem::ManuallyDrop;

use crate::hub::hub;

/// The values one greenlet has made, by key (the address of its
/// [`GreenletLocal`] static). Few per greenlet: searched linearly. Each
/// value is boxed so that it stays put while the list grows. The list
/// itself is boxed on first use: a greenlet that uses none (the common
/// case) pays one word, set and tested once.
///
/// The list sits in a `ManuallyDrop` so that the record's drop glue is an
/// inlined null test rather than a call.
#[derive(Default)]
pub(crate) struct Locals(ManuallyDrop<OnceCell<Box<Values>>>);

type Values = RefCell<Vec<(usize, Box<dyn Any>)>>;

impl Drop for Locals {
    #[inline]
    fn drop(&mut self) {
        // An emptied `OnceCell` owns nothing: not dropping it leaks nothing.
        if let Some(list) = self.0.take() {
            drop_list(list);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_list(list: Box<Values>) {
    drop(list);
}

impl Locals {
    /// Drops every value, in the order they were made. A destructor that
    /// touches a greenlet-local makes a new value, dropped in the next
    /// round; after eight rounds the rest are leaked (logged), as a
    /// thread-local re-created in its own destructor may be.
    ///
    /// A destructor that panics (or unwinds from a kill while it parks)
    /// does not stop the others, nor the later rounds: every value is
    /// dropped here, and the first panic's payload is returned for the
    /// caller to resume or report.
    pub(crate) fn clear(&self) -> Option<Box<dyn Any + Send>> {
        let list = self.0.get()?;
        let mut first_panic = None;
        for _ in 0..8 {
            let values = std::mem::take(&mut *list.borrow_mut());
            if values.is_empty() {
                return first_panic;
            }
            // Each value on its own: were the vector dropped whole, a
            // second panicking destructor would run during the unwind of
            // the first, a panic in cleanup, which aborts the process.
            if let Some(p) = crate::drop_each(values) {
                crate::keep_first(&mut first_panic, p);
            }
        }
        let left = std::mem::take(&mut *list.borrow_mut());
        if !left.is_empty() {
            crate::report(
                log::Level::Warn,
                format_args!(
                    "sylvan: {} greenlet-local value(s) re-created by destructors 8 times; leaked",
                    left.len()
                ),
            );
            std::mem::forget(left);
        }
        first_panic
    }

    /// Whether no value was ever made (the common case, checked at exit).
    #[inline]
    pub(crate) fn never_used(&self) -> bool {
        self.0.get().is_none()
    }
}

/// A key to a per-greenlet value of `T`, declared with
/// [`greenlet_local!`](crate::greenlet_local).
///
/// Each greenlet that calls [`with`](GreenletLocal::with) gets its own `T`,
/// made by the initializer on its first access (a greenlet does not inherit
/// its spawner's value) and dropped when it ends, in that greenlet. Main has
/// its own value, dropped first when the thread's hub is torn down (at
/// thread exit, while sylvan still works); code running on the hub itself
/// (destructors the loop runs) sees main's. A thread of the blocking pool
/// (inside [`spawn_blocking`](crate::spawn_blocking)) has a hub of its own
/// once it uses one, and its jobs share that thread's main value. Use a
/// `Cell` or `RefCell` inside for values that change.
///
/// A destructor that panics does not stop the others: all are dropped, then
/// the greenlet fails with that panic (if it was unwinding already, from a
/// kill or another panic, the panic is reported on stderr instead).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::Cell;
///
/// sylvan::greenlet_local! {
///     static REQUEST_ID: Cell<u64> = Cell::new(0);
/// }
///
/// let handlers: Vec<_> = (1..=3)
///     .map(|id| {
///         sylvan::spawn(move || {
///             REQUEST_ID.with(|r| r.set(id));
///             sylvan::yield_now(); // the others set theirs meanwhile
///             REQUEST_ID.with(|r| r.get())
///         })
///     })
///     .collect();
/// let seen: Vec<u64> = handlers.into_iter().map(|g| g.join().unwrap()).collect();
/// assert_eq!(seen, [1, 2, 3]);
/// assert_eq!(REQUEST_ID.with(|r| r.get()), 0); // main's own value
/// ```
pub struct GreenletLocal<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> GreenletLocal<T> {
    /// A key whose values `init` makes. Use
    /// [`greenlet_local!`](crate::greenlet_local) rather than calling this.
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> GreenletLocal<T> {
        GreenletLocal { init }
    }

    /// Calls `f` with the current greenlet's value, making it first if this
    /// greenlet has none yet.
    ///
    /// # Panics
    ///
    /// When the initializer panics (nothing is stored then; the next access
    /// tries again).
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let locals: &Values = hub().current_task().locals.0.get_or_init(Box::default);
        let found = locals
            .borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| value_ptr::<T>(v));
        let ptr = match found {
            Some(p) => p,
            None => {
                // Not borrowed while the initializer runs: it may use other
                // greenlet-locals.
                let value: Box<dyn Any> = Box::new((self.init)());
                let p = value_ptr::<T>(&value);
                // An initializer that used this key made a value of its
                // own meanwhile: as with `thread_local!`, the outer one
                // wins and that one is dropped (below, not borrowed).
                let mut list = locals.borrow_mut();
                let inner = match list.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => Some(std::mem::replace(v, value)),
                    None => {
                        list.push((key, value));
                        None
                    }
                };
                drop(list);
                drop(inner);
                p
            }
        };
        // SAFETY: the value is boxed (it does not move when the list grows)
        // and is dropped only by `Locals::clear`, which runs once this
        // greenlet's body is over (returned or unwound), so after `f` and
        // every other frame of this greenlet that could hold the reference;
        // main's values are cleared by `Hub::teardown` from the thread-local
        // destructor at thread exit, after main's code has returned, and
        // any made after that are dropped with main's record. (A value replaced above was made by a `with` inside
        // the initializer, whose reference ended when that `with` returned.)
        f(unsafe { &*ptr })
    }
}

fn value_ptr<T: 'static>(v: &Box<dyn Any>) -> *const T {
    let v: &T = v
        .downcast_ref()
        .expect("a greenlet-local keyed by its own address");
    v
}

impl<T: 'static> std::fmt::Debug for GreenletLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenletLocal").finish_non_exhaustive()
    }
}

/// Declares greenlet-local statics, as `std::thread_local!` declares
/// thread-locals: each greenlet sees its own value (see
/// [`GreenletLocal`]).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::RefCell;
///
/// sylvan::greenlet_local! {
///     /// The log lines of the current request.
///     pub static LINES: RefCell<Vec<String>> = RefCell::new(Vec::new());
///     static DEPTH: std::cell::Cell<u32> = std::cell::Cell::new(0);
/// }
///
/// LINES.with(|l| l.borrow_mut().push("main".into()));
/// let g = sylvan::spawn(|| LINES.with(|l| l.borrow().len()));
/// assert_eq!(g.join().unwrap(), 0); // a fresh value, not main's
/// # DEPTH.with(|d| d.set(1));
/// ```
#[macro_export]
macro_rules! greenlet_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::GreenletLocal<$t> =
            $crate::GreenletLocal::new(|| $init);
        $crate::greenlet_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])* $vis static $name: $crate::GreenletLocal<$t> =
            $crate::GreenletLocal::new(|| $init);
    };
}
