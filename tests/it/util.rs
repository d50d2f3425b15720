//! Shared helpers.

use std::cell::RefCell;
use std::process::{Command, Output};
use std::rc::Rc;

/// Appends to a shared log, to check orderings.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    /// What was logged so far, leaving it in place.
    pub fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// Keeps the greenlet failures a test provokes off stderr (this thread's
/// hub only).
pub fn quiet() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
}

/// Counts drops, to prove destructors ran.
pub struct DropFlag(pub Rc<std::cell::Cell<u32>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

pub const CHILD_ENV: &str = "SYLVAN_TEST_CHILD";

/// True in the re-executed child of `run_child(name)`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// The command that re-runs this test binary with only the test `path`
/// (exact; run even if it is ignored, as a BUG or LIMIT test is), marked as
/// the child for `name`.
pub fn child_command(path: &str, name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        path,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(CHILD_ENV, name)
    .env_remove("RUST_BACKTRACE");
    c
}

/// Runs [`child_command`] and returns its output.
pub fn run_child(path: &str, name: &str) -> Output {
    child_command(path, name)
        .output()
        .expect("re-exec the test binary")
}

/// Runs `body` in a re-executed child process (bounded there); in the
/// parent, runs the child and asserts it succeeded and got to the end.
pub fn in_child(path: &str, name: &str, body: impl FnOnce()) {
    if is_child(name) {
        bounded(body);
        println!("PROBE ok");
        return;
    }
    let out = run_child(path, name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// The hard limit of [`bounded`].
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `f` under a hard limit ([`BOUND`]) so that a test that would hang
/// fails with a clear message instead.
pub fn bounded<T>(f: impl FnOnce() -> T) -> T {
    sylvan::with_timeout(BOUND, f).expect("test hung (hit the 5 s bound)")
}

/// Yields (and now and then sleeps a millisecond, so that IO and timers
/// get their turn) until `cond` holds; panics after a bounded number of
/// rounds, naming `what`.
pub fn yield_until(what: &str, cond: impl Fn() -> bool) {
    for i in 0..4000 {
        if cond() {
            return;
        }
        if i % 8 == 7 {
            sylvan::sleep(std::time::Duration::from_millis(1));
        } else {
            sylvan::yield_now();
        }
    }
    panic!("never happened: {what}");
}

/// Calls `f` until it fails and returns that error: for operations that
/// must fail once a peer or listener was dropped (a write, a connect).
///
/// Other tests of this process fork children (Python peers). Until a child
/// execs, it holds a copy of every descriptor, the dropped one included, so
/// the kernel may briefly see the peer or listener as open, and the write
/// or connect succeeds. Bounded: panics if `f` still succeeds after 200
/// tries 10 ms apart.
pub fn first_error<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Error {
    for _ in 0..200 {
        match f() {
            Ok(_) => sylvan::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return e,
        }
    }
    panic!("still succeeding 2 s after the peer or listener was dropped");
}

/// [`first_error`] of one-byte writes to `w`: what a write to a stream
/// whose peer was just dropped gives.
pub fn write_until_error(mut w: impl std::io::Write) -> std::io::Error {
    first_error(|| w.write(b"x"))
}

/// A child's stdout and stderr as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the child `name` of test `path` with `env` set, killing it after
/// `limit`: `None` if it had to be killed (it hung).
pub fn run_child_limited(
    path: &str,
    name: &str,
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> Option<Output> {
    let mut cmd = child_command(path, name);
    cmd.envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("re-exec the test binary");
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read = |mut p: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = p.read_to_end(&mut v);
            v
        })
    };
    let (t_out, t_err) = (read(Box::new(out_pipe)), read(Box::new(err_pipe)));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = Output {
        status: status.unwrap_or_else(|| child.wait().unwrap()),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    if status.is_none() {
        let (o, e) = texts(&out);
        eprintln!("child {name} hung; killed\n--- stdout\n{o}\n--- stderr\n{e}");
        return None;
    }
    Some(out)
}

/// A TCP port on 127.0.0.1 for a server that another program binds later
/// (Python, nginx). It is chosen in 20000..30000, below Linux's ephemeral
/// range (32768 and up), so no concurrent test's `bind(0)` listener or
/// outgoing connection can take it between the check and the other
/// program's bind; and it was free when checked. Successive calls in one
/// run walk the range from a per-process starting point, so concurrent
/// tests of this binary do not pick the same port.
pub fn spare_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(u64::MAX);
    let seed = || {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (u64::from(std::process::id()) * 7919 + u64::from(nanos)) % 10_000
    };
    let _ = NEXT.compare_exchange(u64::MAX, seed(), Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..1_000 {
        let port = 20_000 + (NEXT.fetch_add(1, Ordering::Relaxed) % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port in 20000..30000 on 127.0.0.1");
}

/// Runs the tests named by `paths` (exact) of this binary under
/// `valgrind --tool=memcheck` with `extra` options, within `limit`, and
/// asserts that memcheck found nothing and every one passed. Returns
/// without running (saying so) where valgrind is not installed.
pub fn memcheck(paths: &[&str], extra: &[&str], limit: std::time::Duration) {
    use std::process::{Command, Stdio};
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: skipped (apt-get install valgrind to run it)");
        return;
    }
    let mut child = Command::new("valgrind")
        .args(["--tool=memcheck", "--error-exitcode=99", "-q"])
        .args(extra)
        .arg(std::env::current_exe().unwrap())
        .arg("--exact")
        .args(paths)
        .arg("--test-threads=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run valgrind");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{} passed", paths.len())),
        "memcheck run failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}
