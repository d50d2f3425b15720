//! Reporting greenlet stack overflows.
//!
//! A greenlet that overflows its stack runs into the `PROT_NONE` guard page
//! below it (see [`crate::stack`]) and the kernel raises `SIGSEGV`. Without
//! help the process would die with a bare "Segmentation fault", or with std's
//! message naming the *thread*, which is misleading: the thread's own stack is
//! fine. This module installs a process-wide `SIGSEGV`/`SIGBUS` handler that
//! recognises a fault inside the guard page of the greenlet running on the
//! faulting thread, prints
//!
//! ```text
//! greenlet 'name' overflowed its stack of 256 KiB
//! sylvan: spawn it with a larger stack: Builder::new().stack_size(bytes)
//! ```
//!
//! (`greenlet '#17'` for an unnamed greenlet) to stderr and aborts, the way std
//! reports "thread 'x' has overflowed its stack". Every other fault is passed
//! on to the handler that was installed before (normally std's, which reports
//! overflows of thread stacks), or to the default action.
//!
//! Three pieces cooperate:
//!
//! * [`install_handler`], once per process;
//! * [`set_running`], at every switch, so the handler knows which stack is the
//!   running greenlet's;
//! * [`ensure_alt_stack`], once per thread that runs greenlets: the handler
//!   must run on an alternate signal stack, since the faulting stack is full.
//!
//! Only one guard page is checked. A single frame larger than a page could
//! step over it; Rust emits stack probes for such frames (they touch every
//! page in order), so in Rust code the guard page is still hit first.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::{fmt, io};

use libc::{c_int, c_void, siginfo_t};

use crate::stack::{self, StackMeta};

thread_local! {
    /// The `StackMeta` of the greenlet running on this thread, or null while
    /// the thread runs on its own stack. Const-initialised and without a
    /// destructor, so reading it never allocates, never registers a
    /// destructor and works during thread teardown and in signal handlers.
    static RUNNING: Cell<*const StackMeta> = const { Cell::new(ptr::null()) };
}

/// Tells the overflow handler which stack the current thread runs on: the
/// meta of the greenlet being switched into, or null when switching back to
/// the thread's own stack. Called at every switch; one thread-local store.
///
/// The handler dereferences this pointer when a `SIGSEGV` or `SIGBUS` hits
/// the thread, so it must be null or point at the [`StackMeta`] of a live
/// [`Stack`](crate::stack::Stack) until it is replaced: reset it (or set the
/// next stack) before the running stack is dropped or pooled.
#[inline(always)]
pub fn set_running(meta: *const StackMeta) {
    RUNNING.set(meta);
}

/// This thread's cell that [`set_running`] writes, for a switch that names
/// the next stack itself, at the exact point its own stack is left (see
/// `Switch::switch_to`).
#[inline(always)]
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei))),
    allow(
        dead_code,
        reason = "only sylvan's own switch names the next stack itself"
    )
)]
pub(crate) fn running_cell() -> *mut *const StackMeta {
    RUNNING.with(Cell::as_ptr)
}

/// The stack [`set_running`] last named on this thread (null: the thread's
/// own stack).
#[inline]
pub fn running() -> *const StackMeta {
    RUNNING.get()
}

/// The `sigaction` that was installed for a signal before ours.
struct SavedAction {
    /// Set (with `Release`) once `action` holds the previous action.
    ready: AtomicBool,
    action: UnsafeCell<MaybeUninit<libc::sigaction>>,
}

// SAFETY: `action` is written exactly once, inside `INSTALL.call_once` (so by
// one thread, once), strictly before `ready` is stored with `Release` and
// before our handler is installed for the signal. The only reader, the signal
// handler, reads it after loading `ready == true` with `Acquire`, which
// orders the write before the read; after that it is never written again. So
// there is never a data race on `action`.
unsafe impl Sync for SavedAction {}

impl SavedAction {
    const fn new() -> Self {
        SavedAction {
            ready: AtomicBool::new(false),
            action: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The saved action, once recorded.
    fn get(&self) -> Option<&libc::sigaction> {
        if self.ready.load(Ordering::Acquire) {
            // SAFETY: `ready` is set only after `action` was initialised, and
            // it is never written afterwards (see the `Sync` impl).
            Some(unsafe { (*self.action.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

static PREV_SEGV: SavedAction = SavedAction::new();
static PREV_BUS: SavedAction = SavedAction::new();

/// Installs the overflow handler for `SIGSEGV` and `SIGBUS`, once per process.
///
/// Idempotent and cheap after the first call (one atomic load). The actions
/// installed before are saved and every fault that is not a greenlet stack
/// overflow is passed on to them. Failures (which `sigaction` only reports for
/// invalid arguments) are logged, not returned: the process then simply keeps
/// its previous behaviour.
pub fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        install_for(libc::SIGSEGV, &PREV_SEGV);
        install_for(libc::SIGBUS, &PREV_BUS);
    });
}

/// Saves the current action for `sig` into `saved`, then installs ours.
/// Only called from within `INSTALL.call_once`.
fn install_for(sig: c_int, saved: &'static SavedAction) {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction only writes the current action
    // into `old`, a valid, writable `sigaction`.
    if unsafe { libc::sigaction(sig, ptr::null(), old.as_mut_ptr()) } != 0 {
        log::warn!(
            "cannot read the action of signal {sig}: {}",
            io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: we run inside `INSTALL.call_once`, the only place that writes
    // `saved.action`, and `saved.ready` is still false, so no reader looks at
    // it yet (see the `Sync` impl of `SavedAction`).
    unsafe { (*saved.action.get()).write(old.assume_init()) };
    saved.ready.store(true, Ordering::Release);

    let handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = handle_fault;
    // SAFETY: an all-zero `sigaction` is valid (empty mask, no flags, no
    // restorer); the fields we need are set below.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid, writable `sigset_t`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and `handle_fault` has the
    // signature SA_SIGINFO requires; the old action is not requested.
    if unsafe { libc::sigaction(sig, &action, ptr::null_mut()) } != 0 {
        log::warn!(
            "cannot install the overflow handler for signal {sig}: {}",
            io::Error::last_os_error()
        );
    }
}

/// The `SIGSEGV`/`SIGBUS` handler. Async-signal-safe: no allocation, no locks,
/// only `write(2)`, `sigaction(2)` and `abort(3)`.
extern "C" fn handle_fault(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let running = RUNNING.try_with(Cell::get).unwrap_or(ptr::null());
    if !running.is_null() && !info.is_null() {
        // SAFETY: the kernel hands an SA_SIGINFO handler a valid `siginfo_t`,
        // and for SIGSEGV/SIGBUS its fault address field is initialised.
        let addr = unsafe { (*info).si_addr() } as usize;
        // SAFETY: by `set_running`'s contract, a non-null RUNNING points at
        // the `StackMeta` of a live stack; it is only accessed through shared
        // references.
        let meta = unsafe { &*running };
        if meta.in_guard(addr) {
            let mut buf = MessageBuf::new();
            write_stderr(overflow_message(meta, &mut buf));
            std::process::abort();
        }
    }
    chain(sig, info, ctx);
}

/// Passes a fault we do not own to the action installed before ours.
fn chain(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let saved = match sig {
        libc::SIGSEGV => &PREV_SEGV,
        libc::SIGBUS => &PREV_BUS,
        _ => return,
    };
    let Some(prev) = saved.get() else {
        // Not recorded yet (only possible while `install_handler` runs on
        // another thread): fall back to the default action.
        reset_to_default(sig);
        return;
    };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Returning re-executes the faulting instruction, which now kills the
        // process the default way (ignoring a synchronous fault would loop).
        reset_to_default(sig);
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action was installed with SA_SIGINFO, so its
        // handler has this signature; we forward the kernel's own arguments.
        let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute::<libc::sighandler_t, _>(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO, a handler that is neither SIG_DFL nor
        // SIG_IGN is a `void (*)(int)`.
        let f: extern "C" fn(c_int) =
            unsafe { std::mem::transmute::<libc::sighandler_t, _>(handler) };
        f(sig);
    }
}

/// Restores the default action for `sig` (async-signal-safe).
fn reset_to_default(sig: c_int) {
    // SAFETY: an all-zero `sigaction` is valid and, with `sa_sigaction ==
    // SIG_DFL` (0), it is the default action with an empty mask.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `action` is a valid `sigaction`; sigaction is async-signal-safe.
    unsafe { libc::sigaction(sig, &action, ptr::null_mut()) };
}

/// Writes all of `bytes` to fd 2 with `write(2)`, retrying on `EINTR` and
/// short writes, giving up silently on any other error.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid, readable slice and write(2) reads at
        // most `bytes.len()` bytes from it.
        let n = unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(_) if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Longest name printed; longer names are cut and end in `...`.
const MAX_NAME: usize = 160;

/// A fixed-size message buffer on the stack (no allocation).
struct MessageBuf {
    bytes: [u8; 384],
    len: usize,
}

impl MessageBuf {
    fn new() -> Self {
        MessageBuf {
            bytes: [0; 384],
            len: 0,
        }
    }

    /// Appends as much of `s` as fits.
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// Appends `n` in decimal.
    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// Formats the overflow report for `meta` into `buf`, newline-terminated.
fn overflow_message<'b>(meta: &StackMeta, buf: &'b mut MessageBuf) -> &'b [u8] {
    buf.push(b"greenlet '");
    let (name, len) = meta.name_raw();
    if name.is_null() {
        buf.push(b"#");
        buf.push_u64(meta.id());
    } else {
        // SAFETY: by `Stack::set_owner`'s contract, a recorded name is valid
        // for `len` bytes for as long as it stays recorded, and it is.
        let name = unsafe { std::slice::from_raw_parts(name, len) };
        if name.len() > MAX_NAME {
            // The name is UTF-8: cut before the character that straddles
            // the bound, not inside it (a continuation byte is 0b10xxxxxx).
            let mut end = MAX_NAME;
            while end > 0 && name[end] & 0xc0 == 0x80 {
                end -= 1;
            }
            buf.push(&name[..end]);
            buf.push(b"...");
        } else {
            buf.push(name);
        }
    }
    buf.push(b"' overflowed its stack of ");
    buf.push_u64((meta.size() / 1024) as u64);
    buf.push(b" KiB\n");
    buf.push(HINT);
    &buf.bytes[..buf.len]
}

/// The second line of the report: how to fix it.
const HINT: &[u8] = b"sylvan: spawn it with a larger stack: Builder::new().stack_size(bytes)\n";

/// An alternate signal stack installed by [`ensure_alt_stack`], or nothing
/// when the thread already had one.
///
/// Dropping it disables and unmaps the alternate stack it installed, if that
/// stack is still the thread's current one (otherwise it only unmaps it). It
/// is neither `Send` nor `Sync`: alternate signal stacks are per thread, so it
/// must be dropped on the thread that created it.
pub struct AltStackGuard {
    mapping: Option<AltStack>,
    _thread_bound: PhantomData<*const ()>,
}

/// One mapped alternate signal stack: a guard page and `size` usable bytes.
struct AltStack {
    base: NonNull<u8>,
    size: usize,
}

impl fmt::Debug for AltStackGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AltStackGuard");
        match &self.mapping {
            Some(alt) => d.field("sp", &alt.sp()).field("size", &alt.size).finish(),
            None => d.field("installed", &false).finish(),
        }
    }
}

impl AltStack {
    /// Lowest usable address, what `ss_sp` points at.
    fn sp(&self) -> *mut c_void {
        (self.base.as_ptr() as usize + stack::page_size()) as *mut c_void
    }
}

/// Size of the alternate stacks we map: max(SIGSTKSZ, the kernel's
/// AT_MINSIGSTKSZ, 16 KiB), in whole pages.
fn alt_stack_size() -> usize {
    #[cfg(target_os = "linux")]
    let kernel_min = {
        const AT_MINSIGSTKSZ: libc::c_ulong = 51;
        // SAFETY: getauxval only reads the process's auxiliary vector and
        // returns 0 for an unknown type.
        usize::try_from(unsafe { libc::getauxval(AT_MINSIGSTKSZ) }).unwrap_or(0)
    };
    #[cfg(not(target_os = "linux"))]
    let kernel_min = 0;
    let page = stack::page_size();
    let size = libc::SIGSTKSZ.max(kernel_min).max(16 * 1024);
    size.div_ceil(page) * page
}

/// Makes sure this thread has an alternate signal stack for the overflow
/// handler: the handler cannot run on the stack that just overflowed.
///
/// If the thread already has one (std gives one to every thread it starts,
/// and to the main thread), leaves it alone and returns a guard that does
/// nothing. Otherwise maps one of max(`SIGSTKSZ`, `AT_MINSIGSTKSZ`, 16 KiB)
/// bytes with its own guard page and installs it; dropping the guard disables
/// and unmaps it.
///
/// # Errors
///
/// When `sigaltstack`, `mmap` or `mprotect` fails (the OS error's kind is
/// kept).
pub fn ensure_alt_stack() -> io::Result<AltStackGuard> {
    let none = AltStackGuard {
        mapping: None,
        _thread_bound: PhantomData,
    };
    let mut current = MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: with a null new stack, sigaltstack only writes the current one
    // into `current`, a valid, writable `stack_t`.
    if unsafe { libc::sigaltstack(ptr::null(), current.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and (on success, checked above) filled by the
    // kernel; every bit pattern is a valid `stack_t`.
    let current = unsafe { current.assume_init() };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(none);
    }

    let size = alt_stack_size();
    let base = stack::map_guarded(size).map_err(|(_, err)| {
        io::Error::new(
            err.kind(),
            format!(
                "cannot map a {} KiB alternate signal stack: {err}",
                size / 1024
            ),
        )
    })?;
    let alt = AltStack { base, size };
    let new = libc::stack_t {
        ss_sp: alt.sp(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `new` describes `size` read-write bytes that `alt` owns and that
    // stay mapped until the guard is dropped, which disables the alternate
    // stack first (or leaks the mapping if it cannot).
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        let err = io::Error::last_os_error();
        unmap_alt(&alt);
        return Err(err);
    }
    Ok(AltStackGuard {
        mapping: Some(alt),
        _thread_bound: PhantomData,
    })
}

fn unmap_alt(alt: &AltStack) {
    // SAFETY: `base`/`size + page` is exactly the mapping made by
    // `map_guarded` for `alt`, which is not (or no longer) installed as the
    // alternate stack and is referenced by nothing else.
    let rc = unsafe { libc::munmap(alt.base.as_ptr().cast(), alt.size + stack::page_size()) };
    debug_assert_eq!(rc, 0, "munmap of an alternate signal stack failed");
}

impl Drop for AltStackGuard {
    fn drop(&mut self) {
        let Some(alt) = self.mapping.take() else {
            return;
        };
        let mut current = MaybeUninit::<libc::stack_t>::zeroed();
        // SAFETY: with a null new stack, sigaltstack only writes `current`.
        if unsafe { libc::sigaltstack(ptr::null(), current.as_mut_ptr()) } != 0 {
            return; // cannot tell whether it is still in use: leak it
        }
        // SAFETY: zero-initialised and filled by the kernel; any bit pattern
        // is a valid `stack_t`.
        let current = unsafe { current.assume_init() };
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_sp == alt.sp() {
            if current.ss_flags & libc::SS_ONSTACK != 0 {
                return; // dropped from a handler running on it: leak it
            }
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: alt.size,
            };
            // SAFETY: disabling the alternate stack does not touch memory.
            if unsafe { libc::sigaltstack(&disable, ptr::null_mut()) } != 0 {
                return; // still installed: leak it rather than unmap it
            }
        }
        unmap_alt(&alt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Stack;
    use corosensei::stack::StackPointer;
    use corosensei::{Coroutine, Yielder};
    use std::hint::black_box;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output};

    const CHILD_ENV: &str = "SYLVAN_OVERFLOW_TEST_CHILD";

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

    /// No core dumps from the children that are meant to crash.
    fn no_core_dumps() {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit only reads the `rlimit` we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    }

    /// Recurses until the stack overflows.
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        let frame = black_box([depth as u8; 512]);
        if black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1).wrapping_add(u64::from(frame[(depth % 512) as usize]))
    }

    /// A sylvan stack for corosensei.
    struct OnStack(Stack);

    // SAFETY: `base()` is the stack's 16-byte aligned top and `limit()` the
    // bottom of its guard page (the trait wants guard pages included), both
    // 16-byte aligned; everything from the first usable byte up to the top is
    // read-write memory owned by the `Stack` for as long as `OnStack` lives,
    // with a PROT_NONE guard page below it, and it is far larger than
    // corosensei's 4 KiB minimum.
    unsafe impl corosensei::stack::Stack for OnStack {
        fn base(&self) -> StackPointer {
            StackPointer::new(self.0.top()).expect("non-null top")
        }

        fn limit(&self) -> StackPointer {
            StackPointer::new(self.0.guard_lo()).expect("non-null guard")
        }
    }

    #[test]
    fn greenlet_overflow_is_reported() {
        const NAME: &str = "greenlet_overflow_is_reported";
        if is_child(NAME) {
            no_core_dumps();
            install_handler();
            let _alt = ensure_alt_stack().unwrap();
            let stack = Stack::new(64 * 1024, 3).unwrap();
            // SAFETY: a `'static` name is valid forever.
            unsafe { stack.set_owner(7, Some("deep")) };
            set_running(stack.meta());
            let mut co = Coroutine::with_stack(OnStack(stack), |_: &Yielder<(), ()>, ()| {
                black_box(recurse(0));
            });
            co.resume(());
            set_running(ptr::null());
            println!("CHILD-SURVIVED");
            return;
        }
        let out = run_child(NAME);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{:?}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("greenlet 'deep' overflowed its stack of 64 KiB\n"),
            "stderr: {stderr}"
        );
        assert!(!stdout.contains("CHILD-SURVIVED"));
    }

    #[test]
    fn foreign_overflow_chains_to_std() {
        const NAME: &str = "foreign_overflow_chains_to_std";
        if is_child(NAME) {
            no_core_dumps();
            install_handler();
            let _alt = ensure_alt_stack().unwrap();
            let stack = Stack::new(64 * 1024, 0).unwrap();
            // SAFETY: a `'static` name is valid forever.
            unsafe { stack.set_owner(1, Some("innocent")) };
            let meta = stack.meta() as usize;
            let thread = std::thread::Builder::new()
                .name("plain".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    // A greenlet stack is registered as running, but the
                    // fault hits the thread's own guard page instead.
                    set_running(meta as *const StackMeta);
                    black_box(recurse(0))
                })
                .unwrap();
            let _ = thread.join();
            drop(stack);
            println!("CHILD-SURVIVED");
            return;
        }
        let out = run_child(NAME);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{:?}\n{stderr}",
            out.status
        );
        // std prints "thread 'plain' has overflowed its stack" (newer
        // versions add the thread id after the name).
        assert!(stderr.contains("thread 'plain'"), "stderr: {stderr}");
        assert!(
            stderr.contains("has overflowed its stack"),
            "stderr: {stderr}"
        );
        assert!(!stderr.contains("greenlet"), "stderr: {stderr}");
    }

    #[test]
    fn install_handler_is_idempotent() {
        install_handler();
        install_handler();
        let mut current = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: with a null new action, sigaction only writes `current`.
        let rc = unsafe { libc::sigaction(libc::SIGSEGV, ptr::null(), current.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: filled by the kernel above.
        let current = unsafe { current.assume_init() };
        let ours: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = handle_fault;
        assert_eq!(current.sa_sigaction, ours as libc::sighandler_t);
        assert_ne!(current.sa_flags & libc::SA_ONSTACK, 0);
        let prev = PREV_SEGV.get().expect("previous action saved");
        assert_ne!(
            prev.sa_sigaction, ours as libc::sighandler_t,
            "never chains to itself"
        );
    }

    #[test]
    fn messages() {
        let stack = Stack::new(64 * 1024, 0).unwrap();
        // SAFETY: `meta()` is valid for the stack's lifetime.
        let meta = unsafe { &*stack.meta() };
        // SAFETY: no name is recorded.
        unsafe { stack.set_owner(17, None) };
        let mut buf = MessageBuf::new();
        assert_eq!(
            overflow_message(meta, &mut buf),
            [
                &b"greenlet '#17' overflowed its stack of 64 KiB\n"[..],
                HINT
            ]
            .concat()
        );

        // SAFETY: a `'static` name is valid forever.
        unsafe { stack.set_owner(u64::MAX, Some("fetch https://example.org")) };
        let mut buf = MessageBuf::new();
        assert_eq!(
            overflow_message(meta, &mut buf),
            [
                &b"greenlet 'fetch https://example.org' overflowed its stack of 64 KiB\n"[..],
                HINT
            ]
            .concat()
        );

        let long = "x".repeat(1000);
        // SAFETY: `long` outlives the formatting and is cleared before drop.
        unsafe { stack.set_owner(1, Some(&long)) };
        let mut buf = MessageBuf::new();
        let msg = std::str::from_utf8(overflow_message(meta, &mut buf))
            .unwrap()
            .to_owned();
        stack.clear_owner();
        assert_eq!(
            msg,
            format!(
                "greenlet '{}...' overflowed its stack of 64 KiB\n{}",
                "x".repeat(MAX_NAME),
                std::str::from_utf8(HINT).unwrap()
            )
        );

        let mut buf = MessageBuf::new();
        buf.push_u64(0);
        buf.push(b" ");
        buf.push_u64(u64::MAX);
        assert_eq!(&buf.bytes[..buf.len], b"0 18446744073709551615");
    }

    #[test]
    fn set_running_is_per_thread() {
        let stack = Stack::new(crate::stack::MIN_STACK_SIZE, 0).unwrap();
        set_running(stack.meta());
        assert_eq!(RUNNING.get(), stack.meta());
        std::thread::spawn(|| assert!(RUNNING.get().is_null()))
            .join()
            .unwrap();
        set_running(ptr::null());
        assert!(RUNNING.get().is_null());
    }

    /// The current alternate signal stack of this thread.
    fn current_alt() -> libc::stack_t {
        let mut current = MaybeUninit::<libc::stack_t>::zeroed();
        // SAFETY: with a null new stack, sigaltstack only writes `current`.
        let rc = unsafe { libc::sigaltstack(ptr::null(), current.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: filled by the kernel above.
        unsafe { current.assume_init() }
    }

    #[test]
    fn alt_stack_is_added_only_when_missing() {
        std::thread::spawn(|| {
            // std gives its threads an alternate stack: left alone.
            let std_alt = current_alt();
            let guard = ensure_alt_stack().unwrap();
            assert!(guard.mapping.is_none());
            drop(guard);
            assert_eq!(current_alt().ss_sp, std_alt.ss_sp);

            // Without one, ensure_alt_stack maps and installs one...
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling the alternate stack touches no memory; std's
            // stack stays mapped and is restored below.
            assert_eq!(unsafe { libc::sigaltstack(&disable, ptr::null_mut()) }, 0);
            let guard = ensure_alt_stack().unwrap();
            let installed = current_alt();
            assert_eq!(installed.ss_flags & libc::SS_DISABLE, 0);
            assert!(installed.ss_size >= 16 * 1024);
            assert_eq!(installed.ss_size % stack::page_size(), 0);
            assert_eq!(
                Some(installed.ss_sp),
                guard.mapping.as_ref().map(AltStack::sp)
            );
            // SAFETY: the alternate stack is `ss_size` writable bytes.
            unsafe { ptr::write_bytes(installed.ss_sp.cast::<u8>(), 1, installed.ss_size) };
            assert!(format!("{guard:?}").contains("size"));
            // ... which a second call leaves alone ...
            assert!(ensure_alt_stack().unwrap().mapping.is_none());
            // ... and dropping the guard disables.
            drop(guard);
            assert_ne!(current_alt().ss_flags & libc::SS_DISABLE, 0);

            // SAFETY: restores std's own alternate stack, still mapped.
            assert_eq!(unsafe { libc::sigaltstack(&std_alt, ptr::null_mut()) }, 0);
        })
        .join()
        .unwrap();
    }
}
