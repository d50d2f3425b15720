//! Guarded, coloured `mmap` stacks for greenlets, and a bounded per-thread pool.
//!
//! # Layout
//!
//! Every [`Stack`] owns one anonymous mapping made of exactly two kernel
//! memory mappings (VMAs):
//!
//! ```text
//!  low addresses                                                  high addresses
//!  +------------+--------------------------------------------+-------+-----------+
//!  | guard page |  usable, read-write: frames grow downwards  |colour |StackMeta  |
//!  | PROT_NONE  |  <- limit()                         top() ->| pad   |(64 bytes) |
//!  +------------+--------------------------------------------+-------+-----------+
//!  ^ guard_lo   ^ guard_hi == limit()                                  limit()+size()
//! ```
//!
//! * The guard page turns a stack overflow into a `SIGSEGV` at a known address,
//!   which [`crate::overflow`] reports as "greenlet 'name' overflowed its stack".
//! * The [`StackMeta`] record at the very top tells that signal handler whose
//!   stack it is, without locks or allocation.
//! * The *colour* lowers the starting stack pointer by `colour * 64` bytes
//!   (colour in `0..16`) so that the hot top frames of many greenlets do not all
//!   land on the same cache sets: every mapping is page aligned, so without
//!   colouring the top frames of all stacks alias in the L1/L2 caches.
//!
//! Pages are mapped with `MAP_NORESERVE` and touched lazily, so a stack costs
//! virtual address space up front and physical memory only for the pages its
//! greenlet actually touched.
//!
//! # The pool
//!
//! Mapping a stack takes two system calls (`mmap` + `mprotect`) and unmapping
//! one a third; [`StackPool`] keeps finished stacks for reuse so that spawning
//! a greenlet usually makes no system call at all. A pool belongs to one hub
//! thread and is not shared.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

use corosensei::stack::valgrind::ValgrindStackRegistration;

/// Default usable size of a greenlet stack: 256 KiB.
///
/// This is virtual memory, not resident memory: the pages are mapped with
/// `MAP_NORESERVE` and the kernel backs them only when they are first touched,
/// so an idle greenlet typically costs one or two pages (4-8 KiB) of RAM.
/// 256 KiB leaves room for the stack-hungry work greenlets really do: a TLS
/// handshake (rustls), HTML/JSON parsers, `format!` of large values and fairly
/// deep user call chains, where 64 KiB would be a tight fit. It is still an
/// eighth of a default thread stack (2 MiB in Rust, 8 MiB for the main thread),
/// and at this size 100,000 greenlets reserve 25 GiB of address space, which a
/// 47-bit address space absorbs easily; the practical limit on greenlet count
/// is `vm.max_map_count`, not the stack size (see [`Stack::new`]).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest stack size accepted: 16 KiB. Smaller requests are rounded **up** to
/// this.
///
/// A panic needs stack to unwind: the unwinder, the panic hook and the
/// message formatting take a few KiB on top of whatever frames are live, and a
/// greenlet that cannot even unwind would turn every panic into an abort.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Default bound of a [`StackPool`], in stacks: 1024.
///
/// A pooled stack keeps the pages its previous greenlet touched; for typical
/// greenlets that is one or two pages, so a full pool holds about 4-8 MiB of
/// resident memory (and 2048 memory mappings) in exchange for making the next
/// 1024 spawns free of system calls. Stacks returned while the pool is full are
/// unmapped. [`StackPool::trim`] releases the pooled pages without unmapping.
pub const DEFAULT_POOL_LIMIT: usize = 1024;

/// Number of stack colours: [`Stack::new`] takes the colour modulo this.
pub const STACK_COLOURS: usize = 16;

/// Cache lines below the top that [`Stack::prefetch_top`] fetches: a first
/// run down to its first park uses about 750 bytes.
const PREFETCH_LINES: usize = 12;

/// Bytes by which each colour step lowers the top of the stack (a cache line).
const COLOUR_STEP: usize = 64;

/// Bytes reserved at the very top of a mapping for its [`StackMeta`].
const META_SLOT: usize = 64;

const _: () = assert!(size_of::<StackMeta>() <= META_SLOT);
// Both keep `top()` 16-byte aligned.
const _: () = assert!(META_SLOT.trailing_zeros() >= 4 && COLOUR_STEP.trailing_zeros() >= 4);

#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_STACK_FLAG: libc::c_int = libc::MAP_STACK;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_STACK_FLAG: libc::c_int = 0;

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size (cached after the first call).
#[inline]
pub(crate) fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => init_page_size(),
        page => page,
    }
}

#[cold]
fn init_page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions; _SC_PAGESIZE is a
    // valid name on every unix.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = match usize::try_from(raw) {
        Ok(page) if page.is_power_of_two() => page,
        _ => 4096,
    };
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

/// The largest stack [`Stack::new`] tries to map: 1 TiB, far past any real
/// need, and small enough that a failure to map it is a failure of the
/// system's limits, not of the request (x86-64 user space is 128 TiB).
pub const MAX_STACK_SIZE: usize = 1 << 40;

/// `size` raised to [`MIN_STACK_SIZE`] and rounded up to whole pages; `None`
/// past [`MAX_STACK_SIZE`].
#[inline]
fn usable_size(size: usize) -> Option<usize> {
    if size > MAX_STACK_SIZE {
        return None;
    }
    let page = page_size();
    Some((size.max(MIN_STACK_SIZE) + page - 1) & !(page - 1))
}

/// Maps `page + usable` bytes: one `PROT_NONE` guard page at the bottom and
/// `usable` read-write bytes above it, as exactly two kernel mappings.
///
/// `usable` must be a non-zero multiple of the page size and `usable + page`
/// must not overflow. Returns the address of the guard page (the start of the
/// mapping), which the caller must eventually `munmap` with length
/// `usable + page`. On failure nothing stays mapped; the error is the raw OS
/// error and says whether `mmap` or `mprotect` failed.
pub(crate) fn map_guarded(usable: usize) -> Result<NonNull<u8>, (&'static str, io::Error)> {
    let page = page_size();
    let len = usable + page;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing
    // (null hint, no MAP_FIXED) cannot replace or alias any existing memory;
    // fd -1 and offset 0 are what MAP_ANONYMOUS requires.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | MAP_STACK_FLAG,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(("map", io::Error::last_os_error()));
    }
    let Some(base) = NonNull::new(raw.cast::<u8>()) else {
        // mmap never returns null without MAP_FIXED, but if it ever did we
        // would have no usable address: give it back and report.
        // SAFETY: `raw`/`len` is exactly the mapping created above, which
        // nothing references yet.
        unsafe { libc::munmap(raw, len) };
        return Err(("map", io::Error::from(io::ErrorKind::AddrNotAvailable)));
    };
    // SAFETY: `base + page` is inside the mapping of `len = usable + page`
    // bytes just created (the mapping is one allocation for pointer
    // arithmetic), and [base + page, base + len) is its upper part, which
    // nothing references yet, so changing its protection affects no other
    // memory.
    let rc = unsafe {
        libc::mprotect(
            base.as_ptr().add(page).cast(),
            usable,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: `base`/`len` is exactly the mapping created above and never
        // handed out, so unmapping it cannot invalidate any reference.
        unsafe { libc::munmap(base.as_ptr().cast(), len) };
        return Err(("protect", err));
    }
    Ok(base)
}

/// Formats `n` with `,` thousands separators (error path only).
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    // Length of the leading group: 1 to 3 digits.
    let head = (digits.len() + 2) % 3 + 1;
    let mut out = String::from(&digits[..head]);
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&d| char::from(d)));
    }
    out
}

/// Whether two more mappings fit under `vm.max_map_count` now: maps (and
/// unmaps) the smallest guarded stack, which takes two as every stack does.
/// Three system calls, where counting the lines of `/proc/self/maps` at the
/// limit (65,530 of them) took milliseconds for each failed spawn.
#[cold]
fn map_count_has_room() -> bool {
    let page = page_size();
    match map_guarded(page) {
        Ok(base) => {
            // SAFETY: `base` is the `page + page` byte mapping `map_guarded`
            // just made and handed to nobody.
            unsafe { libc::munmap(base.as_ptr().cast(), 2 * page) };
            true
        }
        Err(_) => false,
    }
}

/// Builds the error for a failed stack mapping: keeps the OS error's kind and
/// explains the usual culprit, `vm.max_map_count` (and `RLIMIT_AS` when set).
#[cold]
#[inline(never)]
fn map_error(usable: usize, step: &str, err: io::Error) -> io::Error {
    let (verb, tail) = match step {
        "protect" => ("make", " writable"),
        _ => ("map", ""),
    };
    if map_count_has_room() {
        return io::Error::new(
            err.kind(),
            format!(
                "cannot {verb} a {} KiB greenlet stack{tail}: {err}; the kernel's limit on memory \
                 mappings (vm.max_map_count) is not what stopped it, so the address space or \
                 the memory limits (RLIMIT_AS, overcommit, cgroup) have no room for a stack \
                 this size: use a smaller stack size",
                usable / 1024
            ),
        );
    }
    let mut msg = format!(
        "cannot {verb} a {} KiB greenlet stack{tail}: {err}; each guarded stack takes 2 kernel \
         memory mappings and the kernel's limit vm.max_map_count ",
        usable / 1024
    );
    match std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map_err(|e| e.to_string())
        .and_then(|s| s.trim().parse::<u64>().map_err(|e| e.to_string()))
    {
        Ok(count) => {
            let suggested = if count < 262_144 {
                262_144
            } else {
                count.saturating_mul(2)
            };
            msg.push_str(&format!(
                "(currently {count}, read from /proc/sys/vm/max_map_count) caps live greenlets \
                 at about {}: raise it with `sysctl -w vm.max_map_count={suggested}`, or lower \
                 the stack count",
                grouped(count / 2)
            ));
        }
        Err(e) => msg.push_str(&format!(
            "(whose current value could not be read from /proc/sys/vm/max_map_count: {e}) caps \
             live greenlets at about half its value: raise it with \
             `sysctl -w vm.max_map_count=262144`, or lower the stack count"
        )),
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the `rlimit` we pass a valid pointer to.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
    if rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
        msg.push_str(&format!(
            "; note that this process also has an address-space limit (RLIMIT_AS, `ulimit -v`) \
             of {} KiB, which every stack counts against",
            limit.rlim_cur / 1024
        ));
    }
    io::Error::new(err.kind(), msg)
}

/// Per-stack record at the very top of a [`Stack`]'s mapping, read by the
/// overflow signal handler (see [`crate::overflow`]).
///
/// It is `#[repr(C)]` plain data, written through `&self` with [`Cell`]s by
/// [`Stack::set_owner`] and only ever read from the thread that owns the
/// stack (a stack overflow is a synchronous signal, delivered to the faulting
/// thread), so no atomics are needed.
#[repr(C)]
#[derive(Debug)]
pub struct StackMeta {
    guard_lo: usize,
    guard_hi: usize,
    size: usize,
    id: Cell<u64>,
    name_ptr: Cell<*const u8>,
    name_len: Cell<usize>,
}

impl StackMeta {
    /// Lowest address of the guard page.
    #[inline]
    pub fn guard_lo(&self) -> usize {
        self.guard_lo
    }

    /// One past the highest address of the guard page (equals
    /// [`Stack::limit`]).
    #[inline]
    pub fn guard_hi(&self) -> usize {
        self.guard_hi
    }

    /// Whether `addr` lies inside the guard page.
    #[inline]
    pub fn in_guard(&self, addr: usize) -> bool {
        self.guard_lo <= addr && addr < self.guard_hi
    }

    /// Usable size of the stack in bytes (as [`Stack::size`]).
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Id of the greenlet that runs on the stack (0 when none was recorded).
    #[inline]
    pub fn id(&self) -> u64 {
        self.id.get()
    }

    /// The owner's name as recorded by [`Stack::set_owner`]: pointer and
    /// length of its UTF-8 bytes, or `(null, 0)` for an unnamed greenlet.
    ///
    /// The bytes are valid to read for as long as the contract of
    /// [`Stack::set_owner`] holds.
    #[inline]
    pub fn name_raw(&self) -> (*const u8, usize) {
        (self.name_ptr.get(), self.name_len.get())
    }
}

/// One greenlet stack: an `mmap`'d region with a guard page below it.
///
/// See the [module documentation](self) for the layout. Dropping a `Stack`
/// unmaps it, so nothing may still run on it (or hold pointers into it) at
/// that point: that is the switch's responsibility.
pub struct Stack {
    /// Start of the mapping (the guard page).
    base: NonNull<u8>,
    /// Length of the whole mapping, guard page included.
    len: usize,
    /// First usable byte (just above the guard page).
    limit: usize,
    /// Usable bytes.
    size: usize,
    /// Coloured, 16-byte aligned initial stack pointer.
    top: usize,
    valgrind: ManuallyDrop<ValgrindStackRegistration>,
}

// SAFETY: a `Stack` exclusively owns its mapping and holds no thread-bound
// state (no thread-locals, no per-thread kernel state), so handing it to
// another thread moves that ownership wholesale. It is deliberately not
// `Sync`: `set_owner` writes the `Cell`s of its `StackMeta` through `&self`.
unsafe impl Send for Stack {}

impl Stack {
    /// Maps a new stack with at least `size` usable bytes (raised to
    /// [`MIN_STACK_SIZE`] and rounded up to whole pages) and the given colour
    /// (taken modulo [`STACK_COLOURS`]): [`top`](Self::top) sits
    /// `colour * 64` bytes below the [`StackMeta`].
    ///
    /// # Errors
    ///
    /// When `mmap` or `mprotect` fails, an error of the OS error's kind (e.g.
    /// [`io::ErrorKind::OutOfMemory`] for `ENOMEM`) whose message names the
    /// cause and the usual culprit: each stack takes two of the kernel's
    /// `vm.max_map_count` mappings (65530 by default), so roughly 32,000 live
    /// stacks exhaust it. [`io::ErrorKind::InvalidInput`] when `size` is past
    /// [`MAX_STACK_SIZE`].
    pub fn new(size: usize, colour: usize) -> io::Result<Stack> {
        match usable_size(size) {
            Some(usable) => Stack::map(usable, colour),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot map a greenlet stack of {size} bytes: too large (the largest is \
                     {MAX_STACK_SIZE} bytes, 1 TiB)"
                ),
            )),
        }
    }

    /// Maps a stack of `usable` bytes (already normalised by `usable_size`).
    #[cold]
    #[inline(never)]
    fn map(usable: usize, colour: usize) -> io::Result<Stack> {
        let page = page_size();
        let base = map_guarded(usable).map_err(|(step, err)| map_error(usable, step, err))?;
        let len = usable + page;
        let start = base.as_ptr() as usize;
        let limit = start + page;
        let meta_addr = start + len - META_SLOT;
        let top = meta_addr - (colour % STACK_COLOURS) * COLOUR_STEP;
        let meta = StackMeta {
            guard_lo: start,
            guard_hi: limit,
            size: usable,
            id: Cell::new(0),
            name_ptr: Cell::new(ptr::null()),
            name_len: Cell::new(0),
        };
        // SAFETY: `meta_addr` is `META_SLOT` (>= size_of::<StackMeta>()) bytes
        // below the end of the read-write part of the mapping just created, is
        // 64-byte aligned (the end is page aligned), and nothing else
        // references that memory yet.
        unsafe {
            base.as_ptr()
                .add(len - META_SLOT)
                .cast::<StackMeta>()
                .write(meta)
        };
        let valgrind = ValgrindStackRegistration::new(base.as_ptr(), len);
        Ok(Stack {
            base,
            len,
            limit,
            size: usable,
            top,
            valgrind: ManuallyDrop::new(valgrind),
        })
    }

    /// Coloured top of the stack, 16-byte aligned: the switch starts the stack
    /// pointer here (frames grow downwards from it).
    #[inline]
    pub fn top(&self) -> usize {
        self.top
    }

    /// Hints the CPU to fetch the lines that a greenlet's first run writes
    /// (its [`StackMeta`] and the frames just below [`top`](Self::top)), so
    /// that the cache and TLB misses on a stack that has not run for a while
    /// overlap with other work instead of stalling the first run.
    #[inline]
    pub fn prefetch_top(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: prefetching is a hint that never faults or changes
            // memory; the addresses lie in this stack's read-write mapping.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(self.meta().cast());
                for line in 1..=PREFETCH_LINES {
                    _mm_prefetch::<_MM_HINT_T0>((self.top - line * 64) as *const i8);
                }
            }
        }
    }

    /// Lowest usable address: the first byte above the guard page.
    #[inline]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Lowest address of the guard page below [`limit`](Self::limit): the
    /// bottom of the mapping.
    #[inline]
    pub fn guard_lo(&self) -> usize {
        self.meta_ref().guard_lo()
    }

    /// Usable bytes: the requested size raised to [`MIN_STACK_SIZE`] and
    /// rounded up to whole pages (guard page not included).
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// The [`StackMeta`] at the top of this stack, valid as long as the stack.
    #[inline]
    pub fn meta(&self) -> *const StackMeta {
        (self.limit + self.size - META_SLOT) as *const StackMeta
    }

    #[inline]
    fn meta_ref(&self) -> &StackMeta {
        // SAFETY: `meta()` points at the `StackMeta` written in `map()`, inside
        // the read-write part of the mapping `self` owns, which stays mapped
        // for as long as `&self` lives. It is only ever accessed through shared
        // references (mutation goes through `Cell`), and greenlet frames live
        // below `top()`, which is below it.
        unsafe { &*self.meta() }
    }

    /// Records who runs on this stack, for the overflow message.
    ///
    /// # Safety
    ///
    /// `name` must stay valid (not freed or moved) until `set_owner` or
    /// [`clear_owner`](Self::clear_owner) is called again or the stack is
    /// dropped or returned to a [`StackPool`]: the overflow handler reads
    /// those bytes, from a signal handler, with no other check.
    #[inline]
    pub unsafe fn set_owner(&self, id: u64, name: Option<&str>) {
        let meta = self.meta_ref();
        meta.id.set(id);
        let (ptr, len) = name.map_or((ptr::null(), 0), |name| (name.as_ptr(), name.len()));
        meta.name_ptr.set(ptr);
        meta.name_len.set(len);
    }

    /// Forgets the owner recorded by [`set_owner`](Self::set_owner).
    #[inline]
    pub fn clear_owner(&self) {
        let meta = self.meta_ref();
        meta.id.set(0);
        meta.name_ptr.set(ptr::null());
        meta.name_len.set(0);
    }

    /// Gives the usable pages back to the kernel, except the top page (which
    /// holds the [`StackMeta`]); they read as zero when next touched.
    fn release_pages(&self, page: usize) {
        let len = self.size - page;
        if len == 0 {
            return;
        }
        // SAFETY: [limit, limit + size - page) lies in the read-write part of
        // the private anonymous mapping `self` owns. The caller only passes
        // pooled stacks, on which nothing runs, and no Rust reference points
        // into that range (the `StackMeta` is in the excluded top page), so
        // replacing its contents by zero pages is unobservable.
        let rc =
            unsafe { libc::madvise(self.limit as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc == 0 {
            // The pages now read as zeros, which memcheck does not know.
            crate::valgrind::mark_defined(self.limit, len);
        } else {
            log::debug!(
                "madvise(MADV_DONTNEED) on a pooled stack failed: {}",
                io::Error::last_os_error()
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: `valgrind` is dropped exactly once, here, and not used again.
        unsafe { ManuallyDrop::drop(&mut self.valgrind) };
        // SAFETY: `base`/`len` is exactly the mapping created in `map()`, owned
        // solely by `self`; references derived from `&self` cannot outlive it,
        // and not running on a dropped stack is the switch's documented duty.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of a greenlet stack failed");
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("limit", &format_args!("{:#x}", self.limit))
            .field("top", &format_args!("{:#x}", self.top))
            .field("size", &self.size)
            .finish()
    }
}

/// Counters of a [`StackPool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Stacks `mmap`ped so far.
    pub mapped: u64,
    /// Stacks unmapped because the pool was full, or on a
    /// [`set_limit`](StackPool::set_limit) shrink.
    pub unmapped: u64,
    /// [`get`](StackPool::get) and [`reserve`](StackPool::reserve) calls
    /// served from the pool (not by mapping a new stack).
    pub reused: u64,
    /// Stacks sitting in the pool now.
    pub pooled: usize,
}

/// A bounded pool of [`Stack`]s, one per hub thread (not shared).
///
/// Stacks are bucketed by usable size; the [`DEFAULT_STACK_SIZE`] bucket is
/// the fast path. [`get`](Self::get) and [`put`](Self::put) make no system
/// call while the pool can serve or keep the stack.
pub struct StackPool {
    /// Stacks of `default_size` usable bytes: the common case.
    default: Vec<Stack>,
    /// `DEFAULT_STACK_SIZE` normalised (equal to it unless pages exceed it).
    default_size: usize,
    /// Other sizes, `(usable size, stacks)`; small, searched linearly.
    others: Vec<(usize, Vec<Stack>)>,
    pooled: usize,
    /// Default-size stacks in `default` promised by [`reserve`](Self::reserve)
    /// and not taken yet: never unmapped, not counted against `limit`.
    reserved: usize,
    /// The last call was [`take_reserved`](Self::take_reserved), not
    /// [`put`](Self::put): greenlets are starting one after another without
    /// giving stacks back, so the next one takes a stack that has not run
    /// lately (cold in cache and TLB), worth prefetching.
    taking: bool,
    limit: usize,
    next_colour: usize,
    mapped: u64,
    unmapped: u64,
    reused: u64,
}

impl StackPool {
    /// An empty pool that keeps at most `limit` stacks.
    pub fn new(limit: usize) -> Self {
        StackPool {
            default: Vec::new(),
            default_size: usable_size(DEFAULT_STACK_SIZE).unwrap_or(DEFAULT_STACK_SIZE),
            others: Vec::new(),
            pooled: 0,
            reserved: 0,
            taking: false,
            limit,
            next_colour: 0,
            mapped: 0,
            unmapped: 0,
            reused: 0,
        }
    }

    /// A stack with `size` usable bytes (normalised as in [`Stack::new`]):
    /// from the pool when one is there (no system call), else freshly mapped
    /// with the next colour (a rotating counter modulo [`STACK_COLOURS`]).
    ///
    /// # Errors
    ///
    /// As [`Stack::new`], when a stack has to be mapped and cannot be.
    #[inline]
    pub fn get(&mut self, size: usize) -> io::Result<Stack> {
        // Only a spare stack: reserved ones are promised.
        let pooled = if size == DEFAULT_STACK_SIZE && self.default.len() > self.reserved {
            self.default.pop()
        } else {
            None
        };
        match pooled {
            Some(stack) => {
                self.pooled -= 1;
                self.reused += 1;
                Ok(stack)
            }
            None => self.get_slow(size),
        }
    }

    #[inline(never)]
    fn get_slow(&mut self, size: usize) -> io::Result<Stack> {
        let Some(usable) = usable_size(size) else {
            return Stack::new(size, 0);
        };
        let bucket = if usable == self.default_size {
            Some(&mut self.default).filter(|d| d.len() > self.reserved)
        } else {
            self.others
                .iter_mut()
                .find(|(s, _)| *s == usable)
                .map(|(_, v)| v)
        };
        if let Some(stack) = bucket.and_then(Vec::pop) {
            self.pooled -= 1;
            self.reused += 1;
            return Ok(stack);
        }
        self.map_new(usable)
    }

    #[cold]
    #[inline(never)]
    fn map_new(&mut self, usable: usize) -> io::Result<Stack> {
        let stack = Stack::map(usable, self.next_colour)?;
        self.next_colour = (self.next_colour + 1) % STACK_COLOURS;
        self.mapped += 1;
        Ok(stack)
    }

    /// Promises a [`DEFAULT_STACK_SIZE`] stack to a later
    /// [`take_reserved`](Self::take_reserved), mapping one now if the pool has
    /// none to spare, so that failing to get a stack is reported here.
    ///
    /// A greenlet reserves at spawn and takes its stack when it first runs:
    /// by then the top of the pool holds the stack most recently given back,
    /// likely still in cache, whereas a stack chosen at spawn has gone cold
    /// while other greenlets ran.
    ///
    /// # Errors
    ///
    /// As [`Stack::new`], when a stack has to be mapped and cannot be.
    #[inline]
    pub fn reserve(&mut self) -> io::Result<()> {
        if self.default.len() <= self.reserved {
            self.reserve_new()?;
        } else {
            self.reused += 1;
        }
        self.reserved += 1;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn reserve_new(&mut self) -> io::Result<()> {
        let stack = self.map_new(self.default_size)?;
        // Stacks given back later land on top of it: the next greenlet to
        // run takes the hottest stack either way.
        self.default.push(stack);
        self.pooled += 1;
        Ok(())
    }

    /// Takes a stack promised by [`reserve`](Self::reserve): the one on top.
    ///
    /// # Panics
    ///
    /// When nothing was reserved.
    #[inline]
    pub fn take_reserved(&mut self) -> Stack {
        assert!(self.reserved > 0, "sylvan: take_reserved without reserve");
        self.reserved -= 1;
        self.pooled -= 1;
        let stack = self.default.pop().expect("a reserved stack is in the pool");
        // After a put, the top is the stack just given back, still hot; after
        // a take, it is one that has sat in the pool.
        if self.taking
            && self.reserved > 0
            && let Some(next) = self.default.last()
        {
            next.prefetch_top();
        }
        self.taking = true;
        stack
    }

    /// Gives up a reservation that will not be taken (the greenlet was
    /// cancelled before it ran); unmaps a stack if the pool is now past its
    /// bound.
    pub fn unreserve(&mut self) {
        assert!(self.reserved > 0, "sylvan: unreserve without reserve");
        self.reserved -= 1;
        if self.spare() > self.limit
            && let Some(stack) = self.default.pop()
        {
            drop(stack);
            self.pooled -= 1;
            self.unmapped += 1;
        }
    }

    /// Pooled stacks not promised to a reservation: what `limit` bounds.
    #[inline]
    fn spare(&self) -> usize {
        self.pooled - self.reserved
    }

    /// Returns a stack: kept when fewer than [`limit`](Self::limit) stacks are
    /// pooled (reserved ones aside), else unmapped. Clears its owner; makes
    /// no system call when the stack is kept.
    #[inline]
    pub fn put(&mut self, stack: Stack) {
        stack.clear_owner();
        // Its last frames left memory that memcheck marked "no access"; the
        // next body is placed there from outside the stack.
        crate::valgrind::mark_undefined(stack.limit(), stack.top() - stack.limit());
        self.taking = false;
        if self.spare() < self.limit && stack.size == self.default_size {
            self.default.push(stack);
            self.pooled += 1;
        } else {
            self.put_slow(stack);
        }
    }

    #[inline(never)]
    fn put_slow(&mut self, stack: Stack) {
        if self.spare() >= self.limit {
            self.unmapped += 1;
            drop(stack);
            return;
        }
        let size = stack.size;
        match self.others.iter_mut().find(|(s, _)| *s == size) {
            Some((_, bucket)) => bucket.push(stack),
            None => self.others.push((size, vec![stack])),
        }
        self.pooled += 1;
    }

    /// The most stacks the pool keeps.
    #[inline]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the bound; shrinking below the number of pooled stacks unmaps
    /// the excess at once (non-default sizes first; reserved stacks stay).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        let mut excess = self.spare().saturating_sub(limit);
        for (_, bucket) in self.others.iter_mut().rev() {
            if excess == 0 {
                break;
            }
            let n = excess.min(bucket.len());
            bucket.truncate(bucket.len() - n);
            excess -= n;
            self.unmapped += n as u64;
            self.pooled -= n;
        }
        self.others.retain(|(_, bucket)| !bucket.is_empty());
        let n = excess.min(self.default.len() - self.reserved);
        self.default.truncate(self.default.len() - n);
        self.unmapped += n as u64;
        self.pooled -= n;
        if self.default.capacity() > limit.max(16).saturating_mul(2) {
            self.default.shrink_to(limit);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            mapped: self.mapped,
            unmapped: self.unmapped,
            reused: self.reused,
            pooled: self.pooled,
        }
    }

    /// Gives back the memory of pooled stacks without unmapping them:
    /// `madvise(MADV_DONTNEED)` on each pooled stack's usable pages except the
    /// top page (which holds the [`StackMeta`] and the first frames).
    ///
    /// This costs one system call per pooled stack plus page faults when the
    /// stacks are reused, so call it rarely, e.g. when a hub goes idle. The
    /// stacks stay mapped and usable; their contents read as zero.
    pub fn trim(&mut self) {
        let page = page_size();
        let others = self.others.iter().flat_map(|(_, bucket)| bucket);
        for stack in self.default.iter().chain(others) {
            stack.release_pages(page);
        }
    }
}

impl Default for StackPool {
    /// A pool bounded by [`DEFAULT_POOL_LIMIT`].
    fn default() -> Self {
        StackPool::new(DEFAULT_POOL_LIMIT)
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("limit", &self.limit)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Output};

    const CHILD_ENV: &str = "SYLVAN_STACK_TEST_CHILD";

    /// Whether this process is the re-executed child for test `name`.
    fn is_child(name: &str) -> bool {
        std::env::var_os(CHILD_ENV).is_some_and(|v| v == name)
    }

    /// Re-executes this test binary to run only test `name` as a child.
    fn run_child(name: &str) -> Output {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, rest)| rest);
        let path = format!("{module}::{name}");
        Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--exact", &path, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, name)
            .output()
            .expect("spawn child test process")
    }

    /// `(start, end, perms)` of every mapping of this process.
    fn maps() -> Vec<(usize, usize, String)> {
        let text = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        text.lines()
            .map(|line| {
                let mut fields = line.split_whitespace();
                let range = fields.next().unwrap();
                let perms = fields.next().unwrap().to_string();
                let (lo, hi) = range.split_once('-').unwrap();
                let lo = usize::from_str_radix(lo, 16).unwrap();
                let hi = usize::from_str_radix(hi, 16).unwrap();
                (lo, hi, perms)
            })
            .collect()
    }

    #[test]
    fn layout_top_meta_colour() {
        let page = page_size();
        for colour in [0, 1, 7, 15, 16, 17] {
            let stack = Stack::new(40 * 1024, colour).unwrap();
            let meta = stack.meta() as usize;
            assert_eq!(stack.size() % page, 0);
            assert!(stack.size() >= 40 * 1024);
            assert_eq!(stack.top() % 16, 0);
            assert!(stack.top() <= meta);
            assert_eq!(meta - stack.top(), (colour % STACK_COLOURS) * 64);
            assert_eq!(meta + META_SLOT, stack.limit() + stack.size());
            // SAFETY: `meta()` is valid for the stack's lifetime.
            let m = unsafe { &*stack.meta() };
            assert_eq!(m.size(), stack.size());
            assert_eq!(m.guard_hi(), stack.limit());
            assert_eq!(m.guard_lo(), stack.limit() - page);
            assert!(m.in_guard(stack.limit() - 1) && !m.in_guard(stack.limit()));
        }
    }

    #[test]
    fn takes_in_a_row_prefetch_within_the_next_stack() {
        // The prefetched lines lie in the read-write part even of the
        // smallest stack with the deepest colour.
        let small = Stack::new(MIN_STACK_SIZE, STACK_COLOURS - 1).unwrap();
        assert!(small.top() - PREFETCH_LINES * 64 >= small.limit());
        small.prefetch_top();
        let mut pool = StackPool::new(8);
        for _ in 0..5 {
            pool.reserve().unwrap();
        }
        // Five takes with no put between: all but the first prefetch the
        // stack left on top; each stack is distinct and writable at its top.
        let taken: Vec<Stack> = (0..5).map(|_| pool.take_reserved()).collect();
        let mut tops: Vec<usize> = taken.iter().map(Stack::top).collect();
        tops.sort_unstable();
        tops.dedup();
        assert_eq!(tops.len(), 5);
        for stack in &taken {
            // SAFETY: the line just below the top is in the stack's
            // read-write part, and nothing runs on it.
            unsafe { ((stack.top() - 64) as *mut u64).write(7) };
        }
        // Mapped for their reservations, so not counted as reused.
        assert_eq!((pool.stats().mapped, pool.stats().reused), (5, 0));
        for stack in taken {
            pool.put(stack);
        }
        assert_eq!(pool.stats().pooled, 5);
        // A reservation the pool can serve counts once, when it is made.
        pool.reserve().unwrap();
        assert_eq!((pool.stats().mapped, pool.stats().reused), (5, 1));
        drop(pool.take_reserved());
        assert_eq!((pool.stats().mapped, pool.stats().reused), (5, 1));
    }

    #[test]
    fn reservations_are_kept_and_served_hottest_first() {
        let mut pool = StackPool::new(2);
        // Reserving maps when nothing is spare; the reserved stacks survive
        // the bound.
        for _ in 0..4 {
            pool.reserve().unwrap();
        }
        assert_eq!(pool.stats().mapped, 4);
        pool.set_limit(0);
        assert_eq!(pool.stats().pooled, 4, "reserved stacks are not unmapped");
        pool.set_limit(2);
        // A plain get does not steal a promised stack.
        let other = pool.get(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(pool.stats().mapped, 5);
        let a = pool.take_reserved();
        let a_top = a.top();
        pool.put(a);
        // The stack just given back is the next one taken.
        let b = pool.take_reserved();
        assert_eq!(b.top(), a_top);
        pool.put(b);
        // Two reservations left and two spare stacks (the bound): one more
        // is unmapped.
        pool.put(other);
        assert_eq!(pool.stats().unmapped, 1);
        // Giving up the reservations unmaps what then exceeds the bound.
        pool.unreserve();
        pool.unreserve();
        assert_eq!(pool.stats().pooled, 2);
        assert_eq!(pool.stats().unmapped, 3);
    }

    #[test]
    fn sizes_are_normalised() {
        let page = page_size();
        assert_eq!(Stack::new(0, 0).unwrap().size(), MIN_STACK_SIZE.max(page));
        assert_eq!(Stack::new(1, 0).unwrap().size(), MIN_STACK_SIZE.max(page));
        assert_eq!(
            Stack::new(MIN_STACK_SIZE + 1, 0).unwrap().size(),
            MIN_STACK_SIZE + page
        );
        assert_eq!(
            Stack::new(DEFAULT_STACK_SIZE, 3).unwrap().size(),
            DEFAULT_STACK_SIZE
        );
        let err = Stack::new(usize::MAX - 10, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn whole_usable_range_is_writable_and_guard_is_mapped_none() {
        let page = page_size();
        let stack = Stack::new(64 * 1024, 5).unwrap();
        let len = stack.top() - stack.limit();
        // SAFETY: [limit, top) is read-write memory owned by `stack` and
        // referenced by nothing else (the StackMeta lies above `top`).
        unsafe { ptr::write_bytes(stack.limit() as *mut u8, 0xa5, len) };
        // SAFETY: as above; the bytes were just initialised.
        let bytes = unsafe { std::slice::from_raw_parts(stack.limit() as *const u8, len) };
        assert!(bytes.iter().all(|&b| b == 0xa5));

        let maps = maps();
        let guard = maps
            .iter()
            .find(|(lo, hi, _)| *lo <= stack.limit() - page && *hi == stack.limit())
            .expect("a mapping ending at limit()");
        assert_eq!(guard.2, "---p", "guard page mapping: {guard:?}");
        let usable = maps
            .iter()
            .find(|(lo, hi, _)| *lo == stack.limit() && *hi >= stack.limit() + stack.size())
            .expect("a mapping starting at limit()");
        assert_eq!(usable.2, "rw-p", "usable mapping: {usable:?}");
    }

    #[test]
    fn owner_is_recorded_and_cleared() {
        let stack = Stack::new(MIN_STACK_SIZE, 0).unwrap();
        let name = String::from("worker");
        // SAFETY: `name` outlives every read below and is cleared before drop.
        unsafe { stack.set_owner(42, Some(&name)) };
        // SAFETY: `meta()` is valid for the stack's lifetime.
        let meta = unsafe { &*stack.meta() };
        assert_eq!(meta.id(), 42);
        assert_eq!(meta.name_raw(), (name.as_ptr(), 6));
        // SAFETY: no name is recorded.
        unsafe { stack.set_owner(43, None) };
        assert_eq!(meta.name_raw(), (ptr::null(), 0));
        stack.clear_owner();
        assert_eq!(meta.id(), 0);
    }

    #[test]
    fn pool_reuses_without_mapping() {
        let mut pool = StackPool::new(8);
        let a = pool.get(DEFAULT_STACK_SIZE).unwrap();
        let top = a.top();
        assert_eq!(
            pool.stats(),
            PoolStats {
                mapped: 1,
                ..PoolStats::default()
            }
        );
        // SAFETY: a `'static` name is valid forever.
        unsafe { a.set_owner(9, Some("x")) };
        pool.put(a);
        assert_eq!(pool.stats().pooled, 1);
        let b = pool.get(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.top(), top);
        // SAFETY: `meta()` is valid for the stack's lifetime.
        assert_eq!(unsafe { &*b.meta() }.id(), 0, "put clears the owner");
        assert_eq!(
            pool.stats(),
            PoolStats {
                mapped: 1,
                unmapped: 0,
                reused: 1,
                pooled: 0
            }
        );
        // A size that normalises to the default size shares its bucket.
        pool.put(b);
        let c = pool.get(DEFAULT_STACK_SIZE - 100).unwrap();
        assert_eq!(c.top(), top);
        assert_eq!(pool.stats().reused, 2);
    }

    #[test]
    fn pool_colours_rotate() {
        let mut pool = StackPool::new(0);
        let offsets: Vec<usize> = (0..STACK_COLOURS + 1)
            .map(|_| {
                let s = pool.get(MIN_STACK_SIZE).unwrap();
                s.meta() as usize - s.top()
            })
            .collect();
        for (i, off) in offsets.iter().enumerate() {
            assert_eq!(*off, (i % STACK_COLOURS) * 64);
        }
    }

    #[test]
    fn pool_limit_and_shrink_unmap() {
        let mut pool = StackPool::new(2);
        let stacks: Vec<Stack> = (0..3)
            .map(|_| pool.get(DEFAULT_STACK_SIZE).unwrap())
            .collect();
        for s in stacks {
            pool.put(s);
        }
        assert_eq!(
            pool.stats(),
            PoolStats {
                mapped: 3,
                unmapped: 1,
                reused: 0,
                pooled: 2
            }
        );
        // Other sizes count against the same limit.
        let small = pool.get(MIN_STACK_SIZE).unwrap();
        pool.put(small);
        assert_eq!(pool.stats().unmapped, 2);

        pool.set_limit(1);
        assert_eq!(pool.limit(), 1);
        assert_eq!(pool.stats().pooled, 1);
        assert_eq!(pool.stats().unmapped, 3);
        pool.set_limit(0);
        assert_eq!(pool.stats().pooled, 0);
        assert_eq!(pool.stats().unmapped, 4);
        let s = pool.get(DEFAULT_STACK_SIZE).unwrap();
        pool.put(s);
        assert_eq!(pool.stats().pooled, 0);
        assert_eq!(pool.stats().unmapped, 5);
    }

    #[test]
    fn pool_buckets_sizes_separately() {
        let mut pool = StackPool::new(16);
        let small = pool.get(MIN_STACK_SIZE).unwrap();
        let mid = pool.get(64 * 1024).unwrap();
        let big = pool.get(DEFAULT_STACK_SIZE).unwrap();
        pool.put(small);
        pool.put(mid);
        pool.put(big);
        assert_eq!(pool.stats().pooled, 3);
        assert_eq!(pool.get(64 * 1024).unwrap().size(), 64 * 1024);
        assert_eq!(
            pool.get(MIN_STACK_SIZE).unwrap().size(),
            MIN_STACK_SIZE.max(page_size())
        );
        assert_eq!(
            pool.get(DEFAULT_STACK_SIZE).unwrap().size(),
            DEFAULT_STACK_SIZE
        );
        assert_eq!(pool.stats().reused, 3);
        assert_eq!(pool.stats().mapped, 3);
        // Empty bucket: a new mapping, even though other sizes were pooled.
        assert_eq!(pool.get(128 * 1024).unwrap().size(), 128 * 1024);
        assert_eq!(pool.stats().mapped, 4);
    }

    #[test]
    fn trim_keeps_stacks_usable() {
        let mut pool = StackPool::new(4);
        let a = pool.get(DEFAULT_STACK_SIZE).unwrap();
        let b = pool.get(32 * 1024).unwrap();
        for s in [&a, &b] {
            // SAFETY: [limit, top) is read-write memory owned by `s`, unused.
            unsafe { ptr::write_bytes(s.limit() as *mut u8, 0x5a, s.top() - s.limit()) };
            // SAFETY: a `'static` name is valid forever.
            unsafe { s.set_owner(3, Some("kept")) };
        }
        pool.put(a);
        pool.put(b);
        pool.trim();
        for size in [DEFAULT_STACK_SIZE, 32 * 1024] {
            let s = pool.get(size).unwrap();
            // SAFETY: [limit, limit + size) is read-write memory owned by `s`.
            let bytes = unsafe { std::slice::from_raw_parts(s.limit() as *const u8, s.size()) };
            let below_top_page = s.size() - page_size();
            assert!(
                bytes[..below_top_page].iter().all(|&b| b == 0),
                "trimmed pages read as zero"
            );
            // SAFETY: `meta()` is valid for the stack's lifetime.
            assert_eq!(unsafe { &*s.meta() }.size(), s.size(), "meta survives trim");
            // SAFETY: [limit, top) is read-write memory owned by `s`, unused.
            unsafe { ptr::write_bytes(s.limit() as *mut u8, 1, s.top() - s.limit()) };
        }
    }

    #[test]
    fn grouped_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(32_765), "32,765");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    /// Makes `mmap` fail for real (a low `RLIMIT_AS`) in a child process,
    /// far from the map count's limit: the error blames the memory limits
    /// and asks for a smaller stack, not a higher `vm.max_map_count`. (The
    /// map count's own message is checked where it really runs out, in
    /// `tests/it/stacks.rs`.)
    #[test]
    fn map_failure_under_the_memory_limits_asks_for_a_smaller_stack() {
        const NAME: &str = "map_failure_under_the_memory_limits_asks_for_a_smaller_stack";
        if is_child(NAME) {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let vm_kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmSize in /proc/self/status");
            let cap = (vm_kib + 64 * 1024) * 1024;
            let limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit only reads the `rlimit` we pass.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
            let err = Stack::new(1 << 30, 0).unwrap_err();
            println!("CHILD-KIND {:?}", err.kind());
            println!("CHILD-MSG {err}");
            let mut pool = StackPool::new(4);
            let err = pool.get(1 << 30).unwrap_err();
            assert_eq!(pool.stats(), PoolStats::default());
            println!("CHILD-POOL {err}");
            // Small stacks still fit under the limit.
            pool.get(DEFAULT_STACK_SIZE).unwrap();
            return;
        }
        let out = run_child(NAME);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child failed: {:?}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(stdout.contains("CHILD-KIND OutOfMemory"), "{stdout}");
        let msg = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CHILD-MSG "))
            .expect(&stdout);
        assert!(
            msg.starts_with("cannot map a 1048576 KiB greenlet stack: "),
            "{msg}"
        );
        assert!(msg.contains("RLIMIT_AS"), "{msg}");
        assert!(msg.contains("use a smaller stack size"), "{msg}");
        assert!(!msg.contains("sysctl"), "{msg}");
        let pool_msg = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CHILD-POOL "))
            .expect(&stdout);
        assert!(pool_msg.contains("use a smaller stack size"), "{pool_msg}");
    }
}
