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
    bounded_by(BOUND, f)
}

/// [`bounded`] with a limit of its own, for tests that run long on a loaded
/// machine and should fail only if they hang.
///
/// When `RUST_BACKTRACE` asks for backtraces, the first call resolves one
/// first: the first resolution in a process loads this binary's debug
/// info, hundreds of milliseconds during which the hub does not run, and a
/// test whose greenlet panics inside a short timeout window would pay it
/// there (a test run alone; in the full suite some earlier test did).
pub fn bounded_by<T>(limit: std::time::Duration, f: impl FnOnce() -> T) -> T {
    static SYMBOLS: std::sync::Once = std::sync::Once::new();
    SYMBOLS.call_once(|| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            let _ = std::backtrace::Backtrace::force_capture().to_string();
        }
    });
    sylvan::with_timeout(limit, f).unwrap_or_else(|_| panic!("test hung (hit the {limit:?} bound)"))
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

/// The name the tests use for one that never resolves (RFC 6761).
pub const BAD_HOST: &str = "no-such-host.invalid";

/// Whether this machine's own resolver (std's, on a plain thread) fails
/// [`BAD_HOST`] within 2 s. Tests that check sylvan's error for a name
/// that does not resolve run only then: with no reachable name server the
/// C resolver waits 5 s per try, and some resolvers answer every name.
/// Says why when it returns false.
pub fn bad_host_fails_fast() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::net::ToSocketAddrs::to_socket_addrs(&(BAD_HOST, 80));
            let _ = tx.send(r.is_err());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(2)) {
            Ok(true) => true,
            Ok(false) => {
                eprintln!("skipped: this machine's resolver answers {BAD_HOST}");
                false
            }
            Err(_) => {
                eprintln!("skipped: this machine's resolver takes over 2 s to fail {BAD_HOST}");
                false
            }
        }
    })
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

// ---------------------------------------------------------------- nginx

/// Where the probes look for nginx.
const NGINX: &str = "/usr/sbin/nginx";

/// What an [`Nginx`] is configured with beyond the common frame (one
/// process in the foreground, its logs, pid and temp paths in its prefix, a
/// `server` listening on its ports with `root {DIR}/www`). In `http` and
/// `server`, `{DIR}` is replaced by the prefix and `{P}` and `{Q}` by the
/// first and second port.
pub struct NginxConf<'a> {
    /// `worker_connections` in the `events` block.
    pub worker_connections: u32,
    /// How many loopback ports the server listens on (from [`spare_port`]).
    pub ports: usize,
    /// Directives of the `http` block, before the `server` (an `access_log`
    /// among them, or nginx logs to `{DIR}/logs`).
    pub http: &'a str,
    /// Directives of the `server` block, after its `listen` and `root`.
    pub server: &'a str,
}

/// nginx in the foreground (one process, no master) in a temp prefix, on
/// free ports below the ephemeral range (a lost race is retried on other
/// ports; the start-up probe checks that nginx answers on each); killed and
/// reaped on drop, its prefix removed.
pub struct Nginx {
    child: Option<std::process::Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

/// Whether nginx (its `Server` header) answers `HEAD /__probe` on `port`
/// (std socket, 1 s timeouts; run while nginx starts).
fn is_nginx(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(1)));
    if s.write_all(b"HEAD /__probe HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = Vec::new();
    let _ = s.take(4096).read_to_end(&mut head);
    String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("\r\nserver: nginx")
}

impl Nginx {
    /// Starts nginx with `conf` in a fresh prefix named after `name` (unique
    /// among concurrent tests), after `site` filled its `www` directory;
    /// `None` (and a line saying so) without nginx. Blocks the thread (at
    /// most 8 tries of 3 s): call it outside the hub's greenlets.
    pub fn start(
        name: &str,
        conf: &NginxConf<'_>,
        site: impl FnOnce(&std::path::Path),
    ) -> Option<Nginx> {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        if !std::path::Path::new(NGINX).exists() {
            eprintln!("{NGINX} is not installed: skipped (apt-get install nginx-light)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("sylvan-nginx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["www", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        site(&dir.join("www"));
        let d = dir.display();
        for _attempt in 0..8 {
            let ports: Vec<u16> = (0..conf.ports).map(|_| spare_port()).collect();
            let fill = |s: &str| {
                let s = s.replace("{DIR}", &d.to_string());
                let s = s.replace("{P}", &ports[0].to_string());
                match ports.get(1) {
                    Some(q) => s.replace("{Q}", &q.to_string()),
                    None => s,
                }
            };
            let (http, server) = (fill(conf.http), fill(conf.server));
            let listen: String = ports
                .iter()
                .map(|p| format!("    listen 127.0.0.1:{p};\n"))
                .collect();
            let wc = conf.worker_connections;
            let text = format!(
                r#"
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections {wc}; }}
http {{
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  {http}
  server {{
{listen}    root {d}/www;
    {server}
  }}
}}
"#
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, text).unwrap();
            let dir_s = dir.to_str().unwrap();
            let mut child = Command::new(NGINX)
                .args(["-p", dir_s, "-c", conf_path.to_str().unwrap()])
                .args(["-e", &format!("{dir_s}/error.log")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost a port: try others
                }
                if ports.iter().all(|&p| is_nginx(p)) {
                    return Some(Nginx {
                        child: Some(child),
                        ports,
                        dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }

    /// The first port.
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// All its ports, in the order of [`NginxConf::ports`].
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Its prefix (the site is in `www` there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `http://127.0.0.1:<first port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- ureq against nginx

/// A ureq agent's configuration, before it is built.
pub type Config = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

/// A sylvan agent and the same configuration on std sockets (ureq's own
/// transport), for reference.
pub fn agents(f: impl Fn(Config) -> Config) -> (ureq::Agent, ureq::Agent) {
    let sylvan = sylvan::ureq::agent(f(ureq::Agent::config_builder()).build());
    let std = ureq::Agent::new_with_config(f(ureq::Agent::config_builder()).build());
    (sylvan, std)
}

/// Runs `f` with the std agent on the blocking pool (main parks meanwhile).
pub fn on_std<T: Send + 'static>(
    agent: ureq::Agent,
    f: impl FnOnce(&ureq::Agent) -> T + Send + 'static,
) -> T {
    sylvan::spawn_blocking(move || f(&agent))
}

/// One exchange: status, nginx's `X-Conn` (`connection/request`, from an
/// `add_header X-Conn "$connection/$connection_requests"`) and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub status: u16,
    pub conn: u64,
    pub req: u64,
    pub body: Vec<u8>,
}

/// A response's `X-Conn` as `(connection, request on it)`; `(0, 0)`
/// without one.
pub fn xconn(res: &ureq::http::Response<ureq::Body>) -> (u64, u64) {
    let xc = res
        .headers()
        .get("x-conn")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0/0");
    let (c, q) = xc.split_once('/').unwrap();
    (c.parse().unwrap(), q.parse().unwrap())
}

/// Reads a response whole (at most 16 MiB) into a [`Got`]; or the error.
pub fn summarize(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Got, ureq::Error> {
    let mut res = r?;
    let status = res.status().as_u16();
    let (conn, req) = xconn(&res);
    let body = res.body_mut().with_config().limit(16 << 20).read_to_vec()?;
    Ok(Got {
        status,
        conn,
        req,
        body,
    })
}

/// [`summarize`] of a GET of `url`.
pub fn get(agent: &ureq::Agent, url: &str) -> Result<Got, ureq::Error> {
    summarize(agent.get(url).call())
}

/// Renumbers nginx's connection numbers by first appearance, so runs on
/// two agents compare: `(connection, request on it)`.
pub fn shape(v: &[Got]) -> Vec<(u64, u64)> {
    let mut seen: Vec<u64> = Vec::new();
    v.iter()
        .map(|g| {
            let i = seen.iter().position(|&c| c == g.conn).unwrap_or_else(|| {
                seen.push(g.conn);
                seen.len() - 1
            });
            (i as u64, g.req)
        })
        .collect()
}

// ---------------------------------------------------------------- fork

/// One loopback echo of `word` on this thread's hub (a listener and a
/// connection made now, served by a greenlet): `Some` if it came back.
pub fn loopback_echo(word: &[u8; 4]) -> Option<()> {
    use std::io::{Read, Write};
    let l = sylvan::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = l.local_addr().ok()?;
    let server = sylvan::spawn(move || {
        let (c, _) = l.accept().ok()?;
        let mut b = [0u8; 4];
        (&c).read_exact(&mut b).ok()?;
        (&c).write_all(&b).ok()
    });
    let c = sylvan::net::TcpStream::connect(addr).ok()?;
    (&c).write_all(word).ok()?;
    let mut b = [0u8; 4];
    (&c).read_exact(&mut b).ok()?;
    server.join().ok()??;
    (&b == word).then_some(())
}

/// What [`reap`] returns for a child that outlived its limit (and was
/// killed).
pub const HUNG: i32 = 1000;

/// Forks; the child runs `body` and ends in `_exit` with its code (99 when
/// it panicked). Returns the child's pid in the parent.
pub fn fork_child(body: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork in a test child process; the forked child ends in _exit
    // below and never returns into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(99);
        // SAFETY: ends the forked child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Reaps `pid`, sleeping a millisecond at a time with `sleep` between
/// polls; kills it after `limit` and returns [`HUNG`]. Else its exit code,
/// or minus the signal that ended it.
fn reap_with(pid: libc::pid_t, limit: std::time::Duration, sleep: fn(std::time::Duration)) -> i32 {
    let t = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: polls our own child; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -libc::WTERMSIG(status)
            };
        }
        assert_eq!(r, 0, "waitpid");
        if t.elapsed() > limit {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return HUNG;
        }
        sleep(std::time::Duration::from_millis(1));
    }
}

/// Reaps `pid` while this hub keeps running (one-millisecond sleeps): its
/// exit code, or minus its signal; kills it after `limit` and returns
/// [`HUNG`].
pub fn reap(pid: libc::pid_t, limit: std::time::Duration) -> i32 {
    reap_with(pid, limit, sylvan::sleep)
}

/// [`reap`] blocking the thread (this hub is not run meanwhile). It starts
/// no thread: a thread started while another thread forks can leave std's
/// own thread-start lock held in the child, whose next thread then hangs.
pub fn reap_blocking(pid: libc::pid_t, limit: std::time::Duration) -> i32 {
    reap_with(pid, limit, std::thread::sleep)
}

/// Blocks this OS thread, so that the hub cannot switch (a stall), until
/// `cond` holds or 3 s have passed: a stall that lasts until a blocking
/// detector's watchdog has reported it, however late that thread runs.
pub fn stall_until(cond: impl Fn() -> bool) {
    let t = std::time::Instant::now();
    while !cond() && t.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Waits (running the hub, one-millisecond sleeps) until `cond` holds, up
/// to `limit`: whether it did.
pub fn wait_for(limit: std::time::Duration, cond: impl Fn() -> bool) -> bool {
    let t = std::time::Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            return false;
        }
        sylvan::sleep(std::time::Duration::from_millis(1));
    }
    true
}

/// [`in_child`] that returns the child's stdout and stderr in the parent
/// (`None` in the child, where `body` runs bounded).
pub fn child_texts(path: &str, name: &str, body: impl FnOnce()) -> Option<(String, String)> {
    if is_child(name) {
        bounded(body);
        println!("PROBE ok");
        return None;
    }
    let out = run_child(path, name);
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    Some((stdout, stderr))
}

/// Runs `body` in a re-executed child with `env`, killed after `limit`
/// (for bodies that exit threads, where `bounded`'s timer cannot cut a
/// blocked `std` join); in the parent, returns the child's output, and
/// panics if it hung. `None` in the child.
pub fn limited_child(
    path: &str,
    name: &str,
    env: &[(&str, &str)],
    limit: std::time::Duration,
    body: impl FnOnce(),
) -> Option<Output> {
    if is_child(name) {
        body();
        println!("PROBE ok");
        return None;
    }
    let out = run_child_limited(path, name, env, limit)
        .unwrap_or_else(|| panic!("child {name} hung (killed after {limit:?})"));
    Some(out)
}

/// [`limited_child`] that asserts the child ended well and returns its
/// stdout and stderr.
pub fn limited_child_texts(
    path: &str,
    name: &str,
    env: &[(&str, &str)],
    limit: std::time::Duration,
    body: impl FnOnce(),
) -> Option<(String, String)> {
    let out = limited_child(path, name, env, limit, body)?;
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    Some((stdout, stderr))
}

/// A connected loopback TCP pair on this hub: (client, server side).
pub fn tcp_pair() -> (sylvan::net::TcpStream, sylvan::net::TcpStream) {
    let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = sylvan::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Sets the soft limit of `resource` (at most the hard one); returns the
/// old soft limit.
pub fn set_soft_limit(resource: libc::__rlimit_resource_t, soft: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut lim), 0);
        let new = libc::rlimit {
            rlim_cur: soft.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        assert_eq!(libc::setrlimit(resource, &new), 0);
    }
    lim.rlim_cur
}

/// A `StreamServer` handler that echoes until end of stream or an error.
pub fn echo(mut c: sylvan::net::TcpStream, _peer: std::net::SocketAddr) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 << 10];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Connects to `addr`, sends `msg`, half-closes and reads the reply to its
/// end.
pub fn exchange(addr: std::net::SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut c = sylvan::net::TcpStream::connect(addr)?;
    c.write_all(msg)?;
    c.shutdown(std::net::Shutdown::Write)?;
    let mut v = Vec::new();
    c.read_to_end(&mut v)?;
    Ok(v)
}

/// The child-process runners of the probe files that check what a
/// thread's exit prints (probes56, probes60): `self.0` is the file's module
/// path (`"probes56::"`), `test` the test's name.
pub struct ExitProbe(pub &'static str);

impl ExitProbe {
    /// Runs `body` (which may exit threads) in a child killed after 10 s;
    /// in the parent, asserts it ended well and returns its stdout and
    /// stderr.
    pub fn thread_child(&self, test: &str, body: impl FnOnce()) -> Option<(String, String)> {
        limited_child_texts(
            &format!("{}{test}", self.0),
            test,
            &[],
            std::time::Duration::from_secs(10),
            body,
        )
    }

    /// [`limited_child`] (10 s) for a child that may abort: its whole
    /// output.
    pub fn raw_child(&self, test: &str, body: impl FnOnce()) -> Option<std::process::Output> {
        limited_child(
            &format!("{}{test}", self.0),
            test,
            &[],
            std::time::Duration::from_secs(10),
            body,
        )
    }

    /// In-process child (bounded) returning stdout and stderr.
    pub fn child(&self, test: &str, body: impl FnOnce()) -> Option<(String, String)> {
        child_texts(&format!("{}{test}", self.0), test, body)
    }
}

/// Runs `f` on a new std thread and waits for it (its hub tears down at
/// its exit).
pub fn on_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
}

/// Runs the hub until no greenlet but main is alive (link callbacks
/// included). Not `wait_all`: `bounded`'s own timer would keep it waiting.
pub fn settle() {
    yield_until("every greenlet done", || sylvan::stats().alive == 0);
}

/// True when the child process ended by `SIGABRT`.
pub fn aborted(out: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(libc::SIGABRT)
}

/// A greenlet that parks until `ev` is set, then panics with `msg`.
pub fn fail_on(ev: &Rc<sylvan::sync::Event>, msg: &'static str) -> sylvan::Greenlet<u32> {
    let ev = ev.clone();
    sylvan::spawn(move || -> u32 {
        ev.wait();
        panic!("{msg}")
    })
}

/// Drops into a yield: state a policy's closure may hold.
pub struct YieldOnDrop;

impl Drop for YieldOnDrop {
    fn drop(&mut self) {
        sylvan::yield_now();
    }
}

/// A one-way gate between OS threads, a `threading.Event`: `wait` blocks
/// the calling thread (the hub does not run) until `open`, 5 s at most.
#[derive(Clone, Default)]
pub struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
    pub fn wait(&self) {
        let g = self.0.0.lock().unwrap();
        let (g, _) = self
            .0
            .1
            .wait_timeout_while(g, std::time::Duration::from_secs(5), |open| !*open)
            .unwrap();
        assert!(*g, "gate never opened");
    }
}

/// Blocks the thread (the hub does not run) until `flag` is set; 3 s at
/// most.
pub fn block_until(what: &str, flag: &std::sync::atomic::AtomicBool) {
    let t = std::time::Instant::now();
    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "never: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// How many times `needle` occurs in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// What the report of a `spawn_blocking` job's panic says when its caller
/// had stopped waiting.
pub const ORPHAN: &str = "stopped waiting (killed or timed out)";

/// With one pool thread, a job submitted now runs after every job
/// submitted before it has ended, its report included.
pub fn drain_pool() {
    assert_eq!(sylvan::spawn_blocking(|| 7), 7);
}
