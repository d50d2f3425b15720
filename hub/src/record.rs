//! Task records: shared like an `Rc`, with their memory recycled by the hub.
//!
//! Every spawn needs one record (the type-erased [`Task`](crate::task::Task)
//! plus the slot for the body's value). With `Rc` each one was a `malloc`
//! and a `free`, and glibc's per-size cache holds only seven chunks: a batch
//! of a thousand greenlets dying together sent most frees down the slow path
//! (about 340 of the 1,030 instructions of a spawn + join), and a batch of
//! 20,000 made glibc give the heap top back to the kernel and fault it in
//! again on the next batch. A [`Record`] takes its block from the hub's
//! [`RecordCache`] (last freed, first reused: the block most likely still in
//! cache) and gives it back there, up to the stack pool's bound.
//!
//! The record is built in place in its block, which also saves the copy of
//! the whole record that `Rc::new` makes.

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use sylvan_runtime::stack::Stack;

use crate::task::TaskInner;

/// The front of every block: the reference count and the operations that
/// need the block's real type (erased in [`ErasedRecord`] and [`Body`]).
#[repr(C)]
struct Header {
    strong: Cell<usize>,
    ops: &'static Ops,
}

struct Ops {
    /// Drops the record and frees or recycles its block.
    release: unsafe fn(NonNull<Header>),
    /// Moves the body onto a stack (see [`Body::start`]).
    start: unsafe fn(NonNull<Header>, Stack),
    /// Drops the body unrun (see [`Body::cancel`]).
    cancel: unsafe fn(NonNull<Header>),
}

/// A record, then the body `F` that will fill its value slot, kept here
/// until the greenlet first runs (`repr(C)`: `inner` sits at the same offset
/// whatever `F` is).
#[repr(C)]
struct Block<T, F> {
    head: Header,
    inner: TaskInner<T>,
    body: UnsafeCell<Option<F>>,
}

/// Where `inner` sits in every `Block<T, _>`.
const fn inner_offset<T>() -> usize {
    std::mem::offset_of!(Block<T, ()>, inner)
}

/// A counted reference to a task record (`!Send`, like `Rc`).
pub(crate) struct Record<T: 'static> {
    head: NonNull<Header>,
    _owns: PhantomData<TaskInner<T>>,
}

impl<T: 'static> Record<T> {
    /// A record built by `make` in a block from `cache` (or the allocator),
    /// holding `body` until [`Body::start`] or [`Body::cancel`].
    #[inline]
    pub(crate) fn new<F: FnOnce() -> T + 'static>(
        cache: Option<&RecordCache>,
        make: impl FnOnce() -> TaskInner<T>,
        body: Option<F>,
    ) -> Self {
        let layout = Layout::new::<Block<T, F>>();
        let mem = match cache.and_then(|c| c.take(layout)) {
            Some(mem) => mem,
            None => {
                // SAFETY: `Block` is never zero-sized (it has a header).
                let p = unsafe { alloc::alloc(layout) };
                NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
            }
        };
        let ptr = mem.cast::<Block<T, F>>();
        let block = Block {
            head: Header {
                strong: Cell::new(1),
                ops: const {
                    &Ops {
                        release: release::<T, F>,
                        start: start::<T, F>,
                        cancel: cancel::<T, F>,
                    }
                },
            },
            inner: make(),
            body: UnsafeCell::new(body),
        };
        // SAFETY: `mem` is a fresh block of `Block<T, F>`'s layout, unaliased.
        unsafe { ptr.as_ptr().write(block) };
        Record {
            head: ptr.cast(),
            _owns: PhantomData,
        }
    }

    /// Another reference to the same record, type-erased.
    #[inline]
    pub(crate) fn erased(&self) -> ErasedRecord {
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { incr(self.head) };
        ErasedRecord { head: self.head }
    }

    /// The body this record holds, to start or cancel it later.
    #[inline]
    pub(crate) fn body(&self) -> Body {
        Body { head: self.head }
    }

    /// The record's address (stable for its whole life).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const TaskInner<T> {
        // SAFETY: `inner` lies `inner_offset` bytes into the live block.
        unsafe { self.head.as_ptr().byte_add(inner_offset::<T>()) as *const TaskInner<T> }
    }
}

impl<T: 'static> Deref for Record<T> {
    type Target = TaskInner<T>;

    #[inline]
    fn deref(&self) -> &TaskInner<T> {
        // SAFETY: the block is alive while `self` holds a reference, and is
        // only ever accessed shared (the record's mutable parts are cells).
        unsafe { &*self.as_ptr() }
    }
}

impl<T: 'static> Clone for Record<T> {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { incr(self.head) };
        Record {
            head: self.head,
            _owns: PhantomData,
        }
    }
}

impl<T: 'static> Drop for Record<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` holds one reference, given up here.
        unsafe { decr(self.head) }
    }
}

/// The body kept in a record until the greenlet first runs. Holds no
/// reference: the task keeps it only while the hub's table holds the record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Body {
    head: NonNull<Header>,
}

impl Body {
    /// Places the body on `stack` (the greenlet's core starts there): it runs
    /// at the next resume.
    ///
    /// # Safety
    ///
    /// The record is alive and stays so until its body has finished (the
    /// hub's table holds it); its body is still here (neither started nor
    /// cancelled); the record's core has not been started.
    pub(crate) unsafe fn start(self, stack: Stack) {
        // SAFETY: per contract; `ops` matches the block's type.
        unsafe { (self.head.as_ref().ops.start)(self.head, stack) }
    }

    /// Drops the body unrun. Its destructors are user code and may block.
    ///
    /// # Safety
    ///
    /// The record is alive (the caller holds it across this call); its body
    /// is still here.
    pub(crate) unsafe fn cancel(self) {
        // SAFETY: per contract; `ops` matches the block's type.
        unsafe { (self.head.as_ref().ops.cancel)(self.head) }
    }
}

/// # Safety
///
/// As [`Body::start`], for a `Block<T, F>`.
unsafe fn start<T: 'static, F: FnOnce() -> T + 'static>(head: NonNull<Header>, stack: Stack) {
    let block = head.cast::<Block<T, F>>().as_ptr();
    // SAFETY: per contract the block is alive and its body is still there;
    // nothing else touches the body slot.
    let f = unsafe { (*(*block).body.get()).take() }.expect("sylvan: a greenlet body starts once");
    // SAFETY: as above.
    let slot: *const TaskInner<T> = unsafe { &raw const (*block).inner };
    let body = move || {
        // SAFETY: the hub's table holds a reference to the record until the
        // body has finished (`Hub::finish` drops it after).
        let inner = unsafe { &*slot };
        inner.task.started.set(true);
        let value = {
            // Dropped before the value is stored: a destructor that panics
            // makes the outcome a panic, with no value.
            let _locals = ClearLocals(&inner.task);
            crate::hook::sylvan_begin_short_backtrace(f)
        };
        // SAFETY: the record is alive (see above); its count is a cell.
        let detached = unsafe { head.as_ref() }.strong.get() == 1;
        if detached && inner.task.links.borrow().is_empty() {
            // Only the hub's table holds the record: no handle and no link
            // will ever see the value. Dropped here, in the greenlet, where
            // its destructor may block, rather than on the hub at reaping.
            drop(value);
        } else {
            inner.set_value(value);
        }
    };
    // SAFETY: the record is alive and in place until the body has finished
    // (per contract), and its core was not started.
    unsafe { (*slot).task.core.start(stack, body) };
}

/// Drops a greenlet's greenlet-local values when its body is over: after it
/// returned, or while it unwinds from a panic or kill, still on its stack.
/// Also used by pool members, so that their values are gone before they
/// leave the pool.
pub(crate) struct ClearLocals<'a>(pub(crate) &'a crate::task::Task);

impl Drop for ClearLocals<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.0.locals.never_used()
            && let Some(panic) = self.0.locals.clear()
        {
            // A destructor panicked: the greenlet fails with that panic
            // (the other values were dropped all the same). Already
            // unwinding, a second unwind would abort: it is reported.
            if std::thread::panicking() {
                stderr!(
                    "sylvan: a greenlet-local destructor panicked while its greenlet unwound: {}",
                    sylvan_runtime::payload_message(&*panic)
                );
                sylvan_runtime::drop_payload(panic);
            } else {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// # Safety
///
/// As [`Body::cancel`], for a `Block<T, F>`.
unsafe fn cancel<T: 'static, F: 'static>(head: NonNull<Header>) {
    let block = head.cast::<Block<T, F>>().as_ptr();
    // SAFETY: per contract the block is alive; the body is moved out before
    // it is dropped, so a destructor that reaches this record finds the slot
    // empty.
    let f = unsafe { (*(*block).body.get()).take() };
    drop(f);
}

/// A counted reference to a record of any value type: the hub's table keeps
/// one per live greenlet.
pub(crate) struct ErasedRecord {
    head: NonNull<Header>,
}

impl Clone for ErasedRecord {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { incr(self.head) };
        ErasedRecord { head: self.head }
    }
}

impl ErasedRecord {
    /// True when this is the only reference left: dropping it drops the
    /// record, running user destructors.
    #[inline]
    pub(crate) fn is_last(&self) -> bool {
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { self.head.as_ref() }.strong.get() == 1
    }
}

impl Drop for ErasedRecord {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` holds one reference, given up here.
        unsafe { decr(self.head) }
    }
}

/// # Safety
///
/// `head` heads a live block.
#[inline]
unsafe fn incr(head: NonNull<Header>) {
    // SAFETY: per contract.
    let strong = unsafe { &head.as_ref().strong };
    let n = strong
        .get()
        .checked_add(1)
        .expect("sylvan: record count overflow");
    strong.set(n);
}

/// # Safety
///
/// `head` heads a live block, and the caller gives up one reference.
#[inline]
unsafe fn decr(head: NonNull<Header>) {
    // SAFETY: per contract.
    let h = unsafe { head.as_ref() };
    let n = h.strong.get() - 1;
    h.strong.set(n);
    if n == 0 {
        let release = h.ops.release;
        // SAFETY: that was the last reference; `release` matches the block's
        // type (set by `Record::new`).
        unsafe { release(head) }
    }
}

/// Drops the record of a block whose last reference is gone, then gives the
/// block to this thread's hub (or back to the allocator once the hub is
/// gone).
///
/// # Safety
///
/// `head` heads a live `Block<T, F>` with no references left.
unsafe fn release<T: 'static, F: 'static>(head: NonNull<Header>) {
    let block = head.cast::<Block<T, F>>();
    // SAFETY: per contract nobody else can reach the record. Its drop may run
    // user code (the value's destructor, unrun link callbacks, a body never
    // started, the unwinding of one that never finished), which may spawn:
    // the cache is not borrowed meanwhile.
    unsafe { ptr::drop_in_place(block.as_ptr()) };
    let layout = Layout::new::<Block<T, F>>();
    let mem = block.cast::<u8>();
    match crate::hub::try_hub() {
        Some(hub) => hub.records.put(layout, mem),
        // SAFETY: allocated with this layout (by `Record::new` or a cache).
        None => unsafe { alloc::dealloc(mem.as_ptr(), layout) },
    }
}

/// Blocks larger than this go back to the allocator: the cache holds up to
/// a thousand blocks, and a body that captured a big value should not pin
/// that much memory.
const MAX_CACHED_BLOCK: usize = 4096;

/// Free record blocks by layout, last freed first out, bounded in count.
pub(crate) struct RecordCache {
    classes: RefCell<Vec<(Layout, Vec<NonNull<u8>>)>>,
    held: Cell<usize>,
    limit: Cell<usize>,
}

impl RecordCache {
    pub(crate) fn new(limit: usize) -> RecordCache {
        RecordCache {
            classes: RefCell::new(Vec::new()),
            held: Cell::new(0),
            limit: Cell::new(limit),
        }
    }

    /// A free block of `layout`, if one is held.
    #[inline]
    fn take(&self, layout: Layout) -> Option<NonNull<u8>> {
        if self.held.get() == 0 {
            return None;
        }
        let mut classes = self.classes.borrow_mut();
        let (_, free) = classes.iter_mut().find(|(l, _)| *l == layout)?;
        let mem = free.pop()?;
        self.held.set(self.held.get() - 1);
        Some(mem)
    }

    /// Keeps a free block for reuse, or frees it when the cache is full or
    /// the block is large (a body that captured a big value).
    fn put(&self, layout: Layout, mem: NonNull<u8>) {
        if self.held.get() >= self.limit.get() || layout.size() > MAX_CACHED_BLOCK {
            // SAFETY: allocated with this layout.
            unsafe { alloc::dealloc(mem.as_ptr(), layout) };
            return;
        }
        let mut classes = self.classes.borrow_mut();
        let free = match classes.iter().position(|(l, _)| *l == layout) {
            Some(i) => &mut classes[i].1,
            None => {
                classes.push((layout, Vec::new()));
                &mut classes.last_mut().expect("just pushed").1
            }
        };
        free.push(mem);
        self.held.set(self.held.get() + 1);
    }

    /// Sets the bound, freeing blocks held past it.
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.set(limit);
        let mut classes = self.classes.borrow_mut();
        for (layout, free) in classes.iter_mut() {
            while self.held.get() > limit {
                let Some(mem) = free.pop() else { break };
                // SAFETY: allocated with this layout.
                unsafe { alloc::dealloc(mem.as_ptr(), *layout) };
                self.held.set(self.held.get() - 1);
            }
        }
    }

    /// Blocks held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.get()
    }
}

impl Drop for RecordCache {
    fn drop(&mut self) {
        for (layout, free) in self.classes.get_mut().drain(..) {
            for mem in free {
                // SAFETY: allocated with this layout.
                unsafe { alloc::dealloc(mem.as_ptr(), layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::hub::hub;

    #[test]
    fn blocks_are_recycled_and_bounded() {
        std::thread::spawn(|| {
            let records = &hub().records;
            crate::spawn(|| ()).join().unwrap();
            let held = records.held();
            assert!(held >= 1, "a finished greenlet's record is kept");
            let g = crate::spawn(|| ());
            assert_eq!(records.held(), held - 1, "a spawn reuses a kept block");
            g.join().unwrap();
            let gs: Vec<_> = (0..50).map(|i| crate::spawn(move || i)).collect();
            crate::set_stack_pool_limit(10);
            for g in gs {
                g.join().unwrap();
            }
            assert!(records.held() <= 10, "the bound holds: {}", records.held());
            // Room again, but a large block is not kept.
            crate::set_stack_pool_limit(100);
            let held = records.held();
            let big = [0u8; 8192];
            crate::spawn(move || big.len()).join().unwrap();
            assert_eq!(records.held(), held, "a large block is not kept");
        })
        .join()
        .unwrap();
    }
}
