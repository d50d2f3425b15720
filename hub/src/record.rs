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
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use crate::task::TaskInner;

/// The front of every block: the reference count and how to drop the record
/// that follows (its type is erased in [`ErasedRecord`]).
#[repr(C)]
struct Header {
    strong: Cell<usize>,
    release: unsafe fn(NonNull<Header>),
}

#[repr(C)]
struct Block<T> {
    head: Header,
    inner: TaskInner<T>,
}

/// A counted reference to a task record (`!Send`, like `Rc`).
pub(crate) struct Record<T: 'static> {
    ptr: NonNull<Block<T>>,
    _owns: PhantomData<Block<T>>,
}

impl<T: 'static> Record<T> {
    /// A record built by `make` in a block from `cache` (or the allocator).
    #[inline]
    pub(crate) fn new(cache: Option<&RecordCache>, make: impl FnOnce() -> TaskInner<T>) -> Self {
        let layout = Layout::new::<Block<T>>();
        let mem = match cache.and_then(|c| c.take(layout)) {
            Some(mem) => mem,
            None => {
                // SAFETY: `Block<T>` is never zero-sized (it has a header).
                let p = unsafe { alloc::alloc(layout) };
                NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
            }
        };
        let ptr = mem.cast::<Block<T>>();
        let block = Block {
            head: Header {
                strong: Cell::new(1),
                release: release::<T>,
            },
            inner: make(),
        };
        // SAFETY: `mem` is a fresh block of `Block<T>`'s layout, unaliased.
        unsafe { ptr.as_ptr().write(block) };
        Record {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Another reference to the same record, type-erased.
    #[inline]
    pub(crate) fn erased(&self) -> ErasedRecord {
        let head = self.ptr.cast::<Header>();
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { incr(head) };
        ErasedRecord { head }
    }

    /// The record's address (stable for its whole life).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const TaskInner<T> {
        // SAFETY: the block is alive while `self` holds a reference; no
        // reference is created, only the field's address.
        unsafe { &raw const (*self.ptr.as_ptr()).inner }
    }
}

impl<T: 'static> Deref for Record<T> {
    type Target = TaskInner<T>;

    #[inline]
    fn deref(&self) -> &TaskInner<T> {
        // SAFETY: the block is alive while `self` holds a reference, and is
        // only ever accessed shared (the record's mutable parts are cells).
        unsafe { &(*self.ptr.as_ptr()).inner }
    }
}

impl<T: 'static> Clone for Record<T> {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: the block is alive while `self` holds a reference.
        unsafe { incr(self.ptr.cast()) };
        Record {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: 'static> Drop for Record<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` holds one reference, given up here.
        unsafe { decr(self.ptr.cast()) }
    }
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
        let release = h.release;
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
/// `head` heads a live `Block<T>` with no references left.
unsafe fn release<T: 'static>(head: NonNull<Header>) {
    let block = head.cast::<Block<T>>();
    // SAFETY: per contract nobody else can reach the record. Its drop may run
    // user code (the value's destructor, unrun link callbacks, the unwinding
    // of a body that never finished), which may spawn: the cache is not
    // borrowed meanwhile.
    unsafe { ptr::drop_in_place(&raw mut (*block.as_ptr()).inner) };
    let layout = Layout::new::<Block<T>>();
    let mem = block.cast::<u8>();
    match crate::hub::try_hub() {
        Some(hub) => hub.records.put(layout, mem),
        // SAFETY: allocated with this layout (by `Record::new` or a cache).
        None => unsafe { alloc::dealloc(mem.as_ptr(), layout) },
    }
}

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

    /// Keeps a free block for reuse, or frees it when the cache is full.
    fn put(&self, layout: Layout, mem: NonNull<u8>) {
        if self.held.get() >= self.limit.get() {
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
        })
        .join()
        .unwrap();
    }
}
