//! Adversarial probes, round 8: hubs on several OS threads, handles, the
//! blocking pool and thread teardown.
//!
//! Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are
//! regression tests that pass.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as stdmpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{bounded, is_child, quiet, run_child};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `f` on a fresh OS thread (its own hub) and waits at most `limit`
/// for the thread to end, thread-local teardown included.
fn on_thread<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = stdmpsc::channel();
    let th = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    let r = match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("HANG: the probe thread did not finish within {limit:?}"),
    };
    join_within(th, limit);
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Joins `th` within `limit` (polling `is_finished`, then `join`).
fn join_within(th: std::thread::JoinHandle<()>, limit: Duration) {
    let t = Instant::now();
    while !th.is_finished() {
        assert!(
            t.elapsed() < limit,
            "HANG: thread teardown did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    th.join().expect("the probe thread panicked");
}

/// Counts drops across threads.
struct Drops(Arc<AtomicUsize>);

impl Drop for Drops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Re-runs one test of this binary (ignored ones included) as a child,
/// killing it after `limit`; returns (success, stdout, stderr).
fn child_run(path: &str, name: &str, limit: Duration) -> (bool, String, String) {
    use std::process::Stdio;
    let mut c = crate::util::child_command(path, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // read both pipes meanwhile: a chatty child must not block on a full pipe
    fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    }
    let out_t = drain(c.stdout.take().unwrap());
    let err_t = drain(c.stderr.take().unwrap());
    let t = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            killed = true;
            break c.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_t.join().unwrap();
    let mut stderr = err_t.join().unwrap();
    if killed {
        stderr.push_str(&format!("\nHANG: child killed after {limit:?}"));
    }
    (
        status.success() && stdout.contains("1 passed"),
        stdout,
        stderr,
    )
}

fn child_ok(path: &str, name: &str) -> String {
    let out = run_child(path, name);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed: {:?}\n--stdout--\n{stdout}\n--stderr--\n{stderr}",
        out.status
    );
    stdout + &stderr
}

// ----- thread exit with greenlets parked everywhere --------------------------

#[test]
fn t01_thread_exit_with_greenlets_parked_everywhere_runs_every_destructor() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
    let job_result_dropped = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let jd = job_result_dropped.clone();
    let (keep_tx, keep_rx) = stdmpsc::channel::<sylvan::mpsc::Sender<u8>>();
    let n = on_thread(LIMIT, move || {
        use std::io::Read;
        let mut n = 0;
        let mut flag = || {
            n += 1;
            Drops(d.clone())
        };
        // sleep
        let f = flag();
        sylvan::spawn(move || {
            let _f = f;
            sylvan::sleep(Duration::from_secs(3600));
        });
        // Event::wait
        let ev = Rc::new(sylvan::sync::Event::new());
        let (f, e) = (flag(), ev.clone());
        sylvan::spawn(move || {
            let _f = f;
            e.wait();
        });
        // Queue::get
        let q = Rc::new(sylvan::sync::Queue::<u8>::unbounded());
        let (f, q2) = (flag(), q.clone());
        sylvan::spawn(move || {
            let _f = f;
            q2.get();
        });
        // socket read
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = sylvan::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let f = flag();
        sylvan::spawn(move || {
            let _f = f;
            let _l = l;
            let _ = (&c).read(&mut [0u8; 8]);
        });
        // spawn_blocking (its job started before the thread exits: one not
        // started when its caller is killed is not run at all)
        let (f, jd) = (flag(), jd.clone());
        let (st_tx, st_rx) = stdmpsc::channel::<()>();
        sylvan::spawn(move || {
            let _f = f;
            sylvan::spawn_blocking(move || {
                st_tx.send(()).unwrap();
                let _ = gate_rx.recv_timeout(LIMIT);
                Drops(jd)
            })
        });
        // sylvan::mpsc receive (its sender held by the test thread)
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        keep_tx.send(tx).unwrap();
        let f = flag();
        sylvan::spawn(move || {
            let _f = f;
            let _ = rx.recv();
        });
        // Semaphore::acquire
        let sem = Rc::new(sylvan::sync::Semaphore::new(0));
        let (f, s) = (flag(), sem.clone());
        sylvan::spawn(move || {
            let _f = f;
            let _g = s.acquire();
        });
        // join of another parked greenlet
        let (f, f2) = (flag(), flag());
        let target = sylvan::spawn(move || {
            let _f = f2;
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::spawn(move || {
            let _f = f;
            let _ = target.join();
        });
        sylvan::yield_now();
        sylvan::sleep(Duration::from_millis(20));
        st_rx.recv_timeout(LIMIT).unwrap();
        // never started: queued, and spawn_later
        for _ in 0..3 {
            let f = flag();
            sylvan::spawn(move || drop(f));
        }
        let f = flag();
        let _later = sylvan::spawn_later(Duration::from_secs(3600), move || drop(f));
        assert!(sylvan::stats().alive >= 13);
        n
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        n,
        "every greenlet's captures dropped at thread exit"
    );
    // The pool job is still running; let it finish: its result is dropped
    // on the pool thread, nobody receives it.
    gate_tx.send(()).unwrap();
    let t = Instant::now();
    while job_result_dropped.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < LIMIT,
            "the orphaned job's result was never dropped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // The mpsc sender outlives the receiver's hub: a send says disconnected.
    let tx = keep_rx.recv_timeout(LIMIT).unwrap();
    assert!(tx.send(1).is_err());
}

#[test]
fn t02_thread_exit_leaks_no_file_descriptors() {
    const NAME: &str = "t02";
    if is_child(NAME) {
        fn fds() -> usize {
            std::fs::read_dir("/proc/self/fd").unwrap().count()
        }
        // Warm up the things that stay for the process (pool threads etc.).
        on_thread(LIMIT, || sylvan::spawn_blocking(|| 1));
        let before = fds();
        let mut handles = Vec::new();
        for _ in 0..20 {
            let h = on_thread(LIMIT, || {
                use std::io::Read;
                let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                for _ in 0..5 {
                    let c = sylvan::net::TcpStream::connect(addr).unwrap();
                    let (s, _) = l.accept().unwrap();
                    sylvan::spawn(move || {
                        let _s = s;
                        let _ = (&c).read(&mut [0u8; 8]);
                    });
                }
                let l2 = Rc::new(l);
                sylvan::spawn(move || {
                    let _ = l2.accept();
                });
                let (tx, rx) = sylvan::mpsc::channel::<u8>();
                sylvan::spawn(move || {
                    let _tx = tx;
                    let _ = rx.recv();
                });
                sylvan::sleep(Duration::from_millis(5));
                sylvan::Handle::current()
            });
            handles.push(h);
        }
        let with_handles = fds();
        drop(handles);
        let after = fds();
        println!("PROBE fds before={before} with_handles={with_handles} after={after}");
        assert_eq!(after, before, "fds leaked by 20 ended hubs");
        return;
    }
    let out = child_ok("probes8::t02_thread_exit_leaks_no_file_descriptors", NAME);
    assert!(out.contains("PROBE fds"), "{out}");
}

// ----- Handle::spawn racing with the target's exit ---------------------------

#[test]
fn t03_handle_spawn_racing_with_thread_exit_runs_or_drops_every_closure() {
    for round in 0..5 {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let (htx, hrx) = stdmpsc::channel();
        let ran2 = ran.clone();
        let target = std::thread::spawn(move || {
            htx.send(sylvan::Handle::current()).unwrap();
            // Serve remote spawns for a while, then end with work pending.
            let t = Instant::now();
            while ran2.load(Ordering::SeqCst) < 200 * (round + 1) && t.elapsed() < LIMIT {
                sylvan::sleep(Duration::from_micros(200));
            }
        });
        let handle: sylvan::Handle = hrx.recv_timeout(LIMIT).unwrap();
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (handle, drops, ran) = (handle.clone(), drops.clone(), ran.clone());
                std::thread::spawn(move || {
                    let (mut ok, mut gone) = (0usize, 0usize);
                    for _ in 0..3000 {
                        let d = Drops(drops.clone());
                        let ran = ran.clone();
                        match handle.spawn(move || {
                            let _d = d;
                            ran.fetch_add(1, Ordering::SeqCst);
                            sylvan::yield_now();
                        }) {
                            Ok(()) => ok += 1,
                            Err(sylvan::HubGone) => gone += 1,
                        }
                    }
                    (ok, gone)
                })
            })
            .collect();
        let mut ok = 0;
        for s in senders {
            let (o, g) = s.join().unwrap();
            ok += o;
            assert_eq!(o + g, 3000);
        }
        let t = Instant::now();
        while !target.is_finished() {
            assert!(t.elapsed() < LIMIT, "HANG: target thread");
            std::thread::sleep(Duration::from_millis(2));
        }
        target.join().unwrap();
        assert!(!handle.is_alive());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            12_000,
            "round {round}: every closure dropped exactly once (ran {}, accepted {ok})",
            ran.load(Ordering::SeqCst)
        );
        assert!(ran.load(Ordering::SeqCst) <= ok);
        assert!(ran.load(Ordering::SeqCst) >= 200 * (round + 1));
    }
}

#[test]
fn t04_keep_alive_and_wake_after_the_hub_is_gone() {
    let (h, k) = on_thread(LIMIT, || {
        let h = sylvan::Handle::current();
        let k = h.keep_alive();
        (h, k)
    });
    assert!(!h.is_alive());
    h.wake();
    drop(k);
    let k2 = h.keep_alive();
    drop(k2);
    assert_eq!(h.spawn(|| ()), Err(sylvan::HubGone));
    assert!(format!("{h:?}").contains("alive: false"));
}

#[test]
fn t05_keep_alive_held_by_a_thread_that_ends_without_sending() {
    // main parked on an Event only another thread's work would set; that
    // thread drops its KeepAlive without sending: main must get the
    // would-block-forever panic, not hang.
    let r = on_thread(LIMIT, || {
        let keep = sylvan::Handle::current().keep_alive();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(keep);
        });
        let ev = sylvan::sync::Event::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
        th.join().unwrap();
        r.map_err(|p| sylvan::runtime::payload_message(&*p).to_string())
    });
    let msg = r.unwrap_err();
    assert!(msg.contains("would block forever"), "{msg}");
}

// ----- many hubs talking ----------------------------------------------------

#[test]
fn t06_eight_hubs_thousands_of_greenlets_through_sylvan_mpsc() {
    const T: usize = 8;
    const G: usize = 1000;
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..T {
        let (tx, rx) = sylvan::mpsc::channel::<u64>();
        txs.push(tx);
        rxs.push(Some(rx));
    }
    let mut threads = Vec::new();
    let (done_tx, done_rx) = stdmpsc::channel();
    for (i, rx) in rxs.iter_mut().enumerate() {
        let rx = rx.take().unwrap();
        let next = txs[(i + 1) % T].clone();
        let done_tx = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            // G greenlets each send one value to the next thread; one
            // receiver greenlet per thread sums what arrives.
            let senders: Vec<_> = (0..G as u64)
                .map(|k| {
                    let next = next.clone();
                    sylvan::spawn(move || {
                        sylvan::sleep(Duration::from_millis(k % 7));
                        next.send(i as u64 * 1_000_000 + k).unwrap();
                    })
                })
                .collect();
            drop(next);
            let summer = sylvan::spawn(move || {
                let mut sum = 0u64;
                let mut n = 0;
                while n < G {
                    sum += rx.recv().unwrap();
                    n += 1;
                    if n % 100 == 0 {
                        sylvan::yield_now();
                    }
                }
                (n, sum)
            });
            for s in senders {
                s.join().unwrap();
            }
            let r = summer.join().unwrap();
            let _ = done_tx.send((i, r));
        }));
    }
    drop(txs);
    drop(done_tx);
    let mut got = vec![None; T];
    for _ in 0..T {
        let (i, r) = done_rx.recv_timeout(LIMIT).expect("HANG: a hub thread");
        got[i] = Some(r);
    }
    for th in threads {
        join_within(th, LIMIT);
    }
    for (i, r) in got.into_iter().enumerate() {
        let from = ((i + T - 1) % T) as u64;
        let expect: u64 = (0..G as u64).map(|k| from * 1_000_000 + k).sum();
        assert_eq!(r, Some((G, expect)), "thread {i}");
    }
}

#[test]
fn t07_many_greenlets_parked_on_one_receiver_each_get_one_value() {
    let got = on_thread(LIMIT, || {
        bounded(|| {
            let (tx, rx) = sylvan::mpsc::channel::<usize>();
            let rx = Rc::new(rx);
            let gs: Vec<_> = (0..300)
                .map(|_| {
                    let rx = rx.clone();
                    sylvan::spawn(move || rx.recv().unwrap())
                })
                .collect();
            sylvan::yield_now();
            let th = std::thread::spawn(move || {
                for v in 0..300 {
                    tx.send(v).unwrap();
                }
            });
            let mut got: Vec<usize> = gs.into_iter().map(|g| g.join().unwrap()).collect();
            th.join().unwrap();
            got.sort_unstable();
            got
        })
    });
    assert_eq!(got, (0..300).collect::<Vec<_>>());
}

#[test]
fn t08_handle_spawn_ring_across_eight_hubs_counts_exact() {
    const T: usize = 8;
    const N: usize = 500;
    let (reg_tx, reg_rx) = stdmpsc::channel();
    let (fin_tx, fin_rx) = stdmpsc::channel::<usize>();
    let mut threads = Vec::new();
    let total = Arc::new(AtomicUsize::new(0));
    let mut go_txs = Vec::new();
    for i in 0..T {
        let reg_tx = reg_tx.clone();
        let fin_tx = fin_tx.clone();
        let total = total.clone();
        let (go_tx, go_rx) = stdmpsc::channel::<sylvan::Handle>();
        go_txs.push(go_tx);
        threads.push(std::thread::spawn(move || {
            let (ack_tx, ack_rx) = sylvan::mpsc::channel::<usize>();
            let (all_done_tx, all_done_rx) = sylvan::mpsc::channel::<()>();
            reg_tx
                .send((i, sylvan::Handle::current(), all_done_tx))
                .unwrap();
            let next = go_rx.recv_timeout(LIMIT).unwrap();
            for k in 0..N {
                let ack = ack_tx.clone();
                let total = total.clone();
                next.spawn(move || {
                    // runs on the next hub, answers on ours
                    sylvan::yield_now();
                    total.fetch_add(1, Ordering::SeqCst);
                    ack.send(k).unwrap();
                })
                .unwrap();
            }
            drop(ack_tx);
            let mut sum = 0;
            for _ in 0..N {
                sum += ack_rx.recv().unwrap();
            }
            fin_tx.send(sum).unwrap();
            // keep serving the previous hub until everyone is done
            let _ = all_done_rx.recv();
        }));
    }
    drop(reg_tx);
    drop(fin_tx);
    let mut regs: Vec<_> = (0..T)
        .map(|_| reg_rx.recv_timeout(LIMIT).unwrap())
        .collect();
    regs.sort_by_key(|r| r.0);
    let handles: Vec<_> = regs.iter().map(|r| r.1.clone()).collect();
    let mut all_done = Vec::new();
    for (i, go) in go_txs.iter().enumerate() {
        let (_, _, done_tx) = &regs[i];
        all_done.push(done_tx.clone());
        go.send(handles[(i + 1) % T].clone()).unwrap();
    }
    drop(regs);
    for _ in 0..T {
        let sum = fin_rx.recv_timeout(LIMIT).expect("HANG: acks");
        assert_eq!(sum, N * (N - 1) / 2);
    }
    drop(all_done);
    for th in threads {
        join_within(th, LIMIT);
    }
    assert_eq!(total.load(Ordering::SeqCst), T * N);
}

// ----- spawn_blocking -----------------------------------------------------

#[test]
fn t09_kill_while_parked_in_spawn_blocking_result_dropped_on_the_pool() {
    on_thread(LIMIT, || {
        bounded(|| {
            let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
            let (where_tx, where_rx) = stdmpsc::channel::<String>();
            #[derive(Debug)]
            struct Res(stdmpsc::Sender<String>);
            impl Drop for Res {
                fn drop(&mut self) {
                    let name = std::thread::current().name().unwrap_or("?").to_owned();
                    let _ = self.0.send(name);
                }
            }
            let body_done = Rc::new(RefCell::new(false));
            let bd = body_done.clone();
            let (st_tx, st_rx) = stdmpsc::channel::<()>();
            let g = sylvan::spawn(move || {
                let r = sylvan::spawn_blocking(move || {
                    st_tx.send(()).unwrap();
                    let _ = gate_rx.recv_timeout(LIMIT);
                    Res(where_tx)
                });
                *bd.borrow_mut() = true;
                r
            });
            sylvan::yield_now();
            // Started (a job not started when its caller is killed is not
            // run at all); it blocks until we open the gate: kill returns
            // first.
            st_rx.recv_timeout(LIMIT).unwrap();
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            assert!(!*body_done.borrow());
            // keys reused by new sleepers: the late result must not wake them
            let t = Instant::now();
            let sleepers: Vec<_> = (0..20)
                .map(|_| sylvan::spawn(|| sylvan::sleep(Duration::from_millis(300))))
                .collect();
            sylvan::yield_now();
            gate_tx.send(()).unwrap();
            let dropped_on = where_rx.recv_timeout(LIMIT).unwrap();
            assert_eq!(dropped_on, "sylvan-blocking");
            for s in sleepers {
                s.join().unwrap();
            }
            assert!(t.elapsed() >= Duration::from_millis(300));
            // nothing left that can wake main: the deadlock check still works
            let ev = sylvan::sync::Event::new();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.wait()));
            assert!(r.is_err(), "main waiting on nothing must not hang");
        })
    });
}

#[test]
fn t10_timeout_around_spawn_blocking_returns_at_the_deadline() {
    on_thread(LIMIT, || {
        let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let f2 = finished.clone();
        let t = Instant::now();
        let r = sylvan::with_timeout(Duration::from_millis(200), move || {
            sylvan::spawn_blocking(move || {
                let _ = gate_rx.recv_timeout(LIMIT);
                f2.store(true, Ordering::SeqCst);
            })
        });
        let took = t.elapsed();
        assert!(r.is_err());
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(!finished.load(Ordering::SeqCst));
        gate_tx.send(()).unwrap();
        // the same greenlet-free main can use the pool again at once
        assert_eq!(sylvan::spawn_blocking(|| 5), 5);
    });
}

#[test]
fn t11_panic_in_a_job_reaches_main_and_greenlets() {
    on_thread(LIMIT, || {
        quiet();
        let r = std::panic::catch_unwind(|| {
            sylvan::spawn_blocking(|| -> u8 {
                std::panic::panic_any(String::from("job-boom-main"))
            })
        });
        let p = r.unwrap_err();
        assert_eq!(p.downcast_ref::<String>().unwrap(), "job-boom-main");
        let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u8 { panic!("job-boom-{}", 7) }));
        let e = g.join().unwrap_err();
        assert!(e.to_string().contains("job-boom-7"), "{e}");
        // the pool is fine afterwards
        let gs: Vec<_> = (0..40)
            .map(|i| sylvan::spawn(move || sylvan::spawn_blocking(move || i * 2)))
            .collect();
        let s: u32 = gs.into_iter().map(|g| g.join().unwrap()).sum();
        assert_eq!(s, (0..40u32).map(|i| i * 2).sum::<u32>());
    });
}

#[test]
fn t12_nested_spawn_blocking_inside_a_job_returns() {
    let v = on_thread(LIMIT, || {
        bounded(|| {
            let g = sylvan::spawn(|| {
                sylvan::spawn_blocking(|| {
                    let inner = sylvan::spawn_blocking(|| 6);
                    inner * 7
                })
            });
            g.join().unwrap()
        })
    });
    assert_eq!(v, 42);
}

#[test]
fn t13_nested_spawn_blocking_with_a_saturated_pool() {
    const NAME: &str = "t13";
    if is_child(NAME) {
        // Every pool thread runs an outer job that itself calls
        // spawn_blocking: the inner jobs queue behind the outer ones.
        let threads = sylvan::blocking_threads();
        let r = sylvan::with_timeout(Duration::from_secs(2), || {
            let gs: Vec<_> = (0..threads)
                .map(|i| {
                    sylvan::spawn(move || {
                        sylvan::spawn_blocking(move || {
                            std::thread::sleep(Duration::from_millis(100));
                            sylvan::spawn_blocking(move || i) + 1
                        })
                    })
                })
                .collect();
            gs.into_iter().map(|g| g.join().unwrap()).sum::<usize>()
        });
        match r {
            Ok(s) => println!("PROBE nested=ok:{s}"),
            Err(_) => println!("PROBE nested=hang"),
        }
        // the stuck pool threads would keep the process alive: leave now
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    }
    let (_, stdout, stderr) = child_run(
        "probes8::t13_nested_spawn_blocking_with_a_saturated_pool",
        NAME,
        LIMIT,
    );
    assert!(
        stdout.contains("PROBE nested=ok"),
        "nested spawn_blocking with all {} pool threads busy: {stdout}\n{stderr}",
        sylvan::blocking_threads()
    );
}

#[test]
fn t14_pool_saturation_bounded_concurrency_and_fifo_start() {
    const NAME: &str = "t14";
    if is_child(NAME) {
        sylvan::set_blocking_threads(2);
        bounded(|| {
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let order = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..40)
                .map(|i| {
                    let (running, peak, order) = (running.clone(), peak.clone(), order.clone());
                    sylvan::spawn(move || {
                        sylvan::spawn_blocking(move || {
                            order.lock().unwrap().push(i);
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            running.fetch_sub(1, Ordering::SeqCst);
                            i
                        })
                    })
                })
                .collect();
            // the hub stays responsive while 38 jobs queue
            let ticks = sylvan::spawn(|| {
                for _ in 0..10 {
                    sylvan::sleep(Duration::from_millis(1));
                }
            });
            ticks.join().unwrap();
            let got: Vec<usize> = gs.into_iter().map(|g| g.join().unwrap()).collect();
            assert_eq!(got, (0..40).collect::<Vec<_>>());
            assert!(
                peak.load(Ordering::SeqCst) <= 2,
                "peak {}",
                peak.load(Ordering::SeqCst)
            );
            let order = order.lock().unwrap().clone();
            // two threads take jobs in FIFO order: each job starts no later
            // than one place from its turn
            for (pos, &i) in order.iter().enumerate() {
                assert!(pos.abs_diff(i) <= 1, "start order {order:?}");
            }
        });
        // bound 1: strict FIFO
        sylvan::set_blocking_threads(1);
        bounded(|| {
            let order = Arc::new(Mutex::new(Vec::new()));
            let gs: Vec<_> = (0..30)
                .map(|i| {
                    let order = order.clone();
                    sylvan::spawn(move || {
                        sylvan::spawn_blocking(move || order.lock().unwrap().push(i))
                    })
                })
                .collect();
            for g in gs {
                g.join().unwrap();
            }
            // (a surplus thread from the bound of 2 may still finish one job)
            let order = order.lock().unwrap().clone();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..30).collect::<Vec<_>>());
            println!("PROBE order={order:?}");
        });
        return;
    }
    let out = child_ok(
        "probes8::t14_pool_saturation_bounded_concurrency_and_fifo_start",
        NAME,
    );
    assert!(out.contains("PROBE order"), "{out}");
}

#[test]
fn t15_spawn_blocking_from_a_destructor_during_kill_runs_inline() {
    on_thread(LIMIT, || {
        bounded(|| {
            let main_thread = std::thread::current().id();
            let seen = Rc::new(RefCell::new(None));
            struct D(Rc<RefCell<Option<(std::thread::ThreadId, u32)>>>);
            impl Drop for D {
                fn drop(&mut self) {
                    let r = sylvan::spawn_blocking(|| (std::thread::current().id(), 9));
                    *self.0.borrow_mut() = Some(r);
                }
            }
            let d = D(seen.clone());
            let g = sylvan::spawn(move || {
                let _d = d;
                sylvan::sleep(Duration::from_secs(3600));
            });
            sylvan::yield_now();
            g.kill();
            assert_eq!(*seen.borrow(), Some((main_thread, 9)));
        })
    });
}

#[test]
fn t16_job_uses_the_callers_handle_to_spawn_back() {
    let v = on_thread(LIMIT, || {
        bounded(|| {
            let handle = sylvan::Handle::current();
            let main_id = sylvan::current();
            let (tx, rx) = sylvan::mpsc::channel::<String>();
            let g = sylvan::spawn(move || {
                sylvan::spawn_blocking(move || {
                    for i in 0..50 {
                        let tx = tx.clone();
                        handle
                            .spawn(move || {
                                tx.send(format!("{i}:{}", sylvan::current() != main_id))
                                    .unwrap();
                            })
                            .unwrap();
                    }
                })
            });
            g.join().unwrap();
            let got: Vec<String> = rx.iter().collect();
            got
        })
    });
    assert_eq!(v.len(), 50);
    assert_eq!(v[0], "0:true");
    assert_eq!(v[49], "49:true");
}

// ----- teardown details -----------------------------------------------------

#[test]
fn t17_destructor_at_teardown_sends_to_a_greenlet_on_another_hub() {
    let got = on_thread(LIMIT, || {
        bounded(|| {
            let (tx, rx) = sylvan::mpsc::channel::<&'static str>();
            let th = std::thread::spawn(move || {
                struct Bye(sylvan::mpsc::Sender<&'static str>);
                impl Drop for Bye {
                    fn drop(&mut self) {
                        let _ = self.0.send("bye");
                    }
                }
                let b = Bye(tx);
                sylvan::spawn(move || {
                    let _b = b;
                    sylvan::sleep(Duration::from_secs(3600));
                });
                sylvan::yield_now();
            });
            // parks this hub's main until the other thread's teardown
            let got: Vec<_> = rx.iter().collect();
            th.join().unwrap();
            got
        })
    });
    assert_eq!(got, ["bye"]);
}

#[test]
fn t18_greenlet_spawned_by_a_destructor_at_teardown_is_dropped_too() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    on_thread(LIMIT, move || {
        struct SpawnOnDrop(Arc<AtomicUsize>, u32);
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                if self.1 > 0 {
                    let next = SpawnOnDrop(self.0.clone(), self.1 - 1);
                    sylvan::spawn(move || drop(next));
                }
            }
        }
        let s = SpawnOnDrop(d, 1);
        sylvan::spawn(move || {
            let _s = s;
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::yield_now();
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn t19_teardown_of_ten_thousand_greenlets_is_bounded() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t = Instant::now();
    on_thread(LIMIT, move || {
        let ev = Rc::new(sylvan::sync::Event::new());
        for i in 0..10_000 {
            let f = Drops(d.clone());
            let ev = ev.clone();
            sylvan::spawn(move || {
                let _f = f;
                if i % 2 == 0 {
                    ev.wait();
                } else {
                    sylvan::sleep(Duration::from_secs(3600));
                }
            });
        }
        sylvan::yield_now();
        for _ in 0..5_000 {
            let f = Drops(d.clone());
            sylvan::spawn(move || drop(f));
        }
    });
    assert_eq!(drops.load(Ordering::SeqCst), 15_000);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[test]
fn t20_greenlet_that_swallows_kills_does_not_hang_thread_exit() {
    let swallowed = Arc::new(AtomicUsize::new(0));
    let s = swallowed.clone();
    on_thread(LIMIT, move || {
        sylvan::spawn(move || {
            loop {
                let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
                if r.is_err() {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        sylvan::yield_now();
    });
    assert_eq!(swallowed.load(Ordering::SeqCst), 3);
}

// ----- thread-local destructors -----------------------------------------------

#[test]
fn t21_tls_first_touched_by_a_greenlet_can_use_sylvan_in_its_destructor() {
    let (tx, rx) = stdmpsc::channel::<String>();
    on_thread(LIMIT, move || {
        struct Flush(RefCell<Option<stdmpsc::Sender<String>>>);
        impl Drop for Flush {
            fn drop(&mut self) {
                if let Some(tx) = self.0.borrow_mut().take() {
                    // a destructor that blocks and spawns at thread exit
                    sylvan::sleep(Duration::from_millis(5));
                    let v = sylvan::spawn(|| 11).join();
                    let w = sylvan::spawn_blocking(|| 31);
                    let _ = tx.send(format!("{v:?} {w}"));
                }
            }
        }
        thread_local! {
            static FLUSH: Flush = const { Flush(RefCell::new(None)) };
        }
        sylvan::spawn(move || FLUSH.with(|f| *f.0.borrow_mut() = Some(tx)))
            .join()
            .unwrap();
    });
    let got = rx.recv_timeout(LIMIT).expect("the destructor did not run");
    assert_eq!(got, "Ok(11) 31");
}

#[test]
fn t22_tls_touched_before_the_hub_using_sylvan_in_its_destructor() {
    const NAME: &str = "t22";
    if is_child(NAME) {
        let (tx, rx) = stdmpsc::channel::<String>();
        let th = std::thread::spawn(move || {
            struct Flush(RefCell<Option<stdmpsc::Sender<String>>>);
            impl Drop for Flush {
                fn drop(&mut self) {
                    if let Some(tx) = self.0.borrow_mut().take() {
                        sylvan::sleep(Duration::from_millis(5));
                        let v = sylvan::spawn(|| 11).join();
                        let _ = tx.send(format!("{v:?}"));
                    }
                }
            }
            thread_local! {
                static FLUSH: Flush = const { Flush(RefCell::new(None)) };
            }
            // touched before this thread's hub exists
            FLUSH.with(|f| *f.0.borrow_mut() = Some(tx));
            sylvan::spawn(|| ()).join().unwrap();
        });
        let got = rx.recv_timeout(LIMIT);
        let _ = th.join();
        println!("PROBE tls={got:?}");
        return;
    }
    let (ok, stdout, stderr) = child_run(
        "probes8::t22_tls_touched_before_the_hub_using_sylvan_in_its_destructor",
        NAME,
        LIMIT,
    );
    assert!(
        ok && stdout.contains("PROBE tls=Ok(\"Ok(11)\")"),
        "{stdout}\n{stderr}"
    );
}

// ----- more: pool bound, many short-lived hubs, panicking main ---------------

#[test]
fn t23_lowered_bound_applies_once_current_jobs_finish() {
    const NAME: &str = "t23";
    if is_child(NAME) {
        sylvan::set_blocking_threads(4);
        let running = Arc::new(AtomicUsize::new(0));
        let peak_after = Arc::new(AtomicUsize::new(0));
        let lowered = Arc::new(AtomicBool::new(false));
        let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let (started_tx, started_rx) = sylvan::mpsc::channel::<()>();
        let r = sylvan::with_timeout(Duration::from_secs(8), || {
            let gs: Vec<_> = (0..24)
                .map(|i| {
                    let (running, peak_after, lowered) =
                        (running.clone(), peak_after.clone(), lowered.clone());
                    let (gate_rx, started_tx) = (gate_rx.clone(), started_tx.clone());
                    sylvan::spawn(move || {
                        sylvan::spawn_blocking(move || {
                            if i < 4 {
                                // the first four hold their threads until
                                // the bound is lowered
                                started_tx.send(()).unwrap();
                                let _ = gate_rx.lock().unwrap().recv_timeout(LIMIT);
                            } else {
                                // concurrency among the jobs queued behind
                                assert!(lowered.load(Ordering::SeqCst));
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                peak_after.fetch_max(now, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(10));
                                running.fetch_sub(1, Ordering::SeqCst);
                            }
                        })
                    })
                })
                .collect();
            drop(started_tx);
            for _ in 0..4 {
                started_rx.recv().unwrap();
            }
            sylvan::set_blocking_threads(1);
            lowered.store(true, Ordering::SeqCst);
            for _ in 0..4 {
                gate_tx.send(()).unwrap();
            }
            for g in gs {
                g.join().unwrap();
            }
        });
        println!(
            "PROBE done={} peak_after={}",
            r.is_ok(),
            peak_after.load(Ordering::SeqCst)
        );
        return;
    }
    let (ok, stdout, stderr) = child_run(
        "probes8::t23_lowered_bound_applies_once_current_jobs_finish",
        NAME,
        LIMIT,
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("PROBE done=true peak_after=1"),
        "after set_blocking_threads(1), queued jobs still ran on several threads: {stdout}"
    );
}

#[test]
fn t24_many_short_lived_hub_threads_leak_no_mappings_or_fds() {
    const NAME: &str = "t24";
    if is_child(NAME) {
        fn fds() -> usize {
            std::fs::read_dir("/proc/self/fd").unwrap().count()
        }
        fn maps() -> usize {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .count()
        }
        let burst = || {
            for _ in 0..5 {
                let ths: Vec<_> = (0..8)
                    .map(|_| {
                        std::thread::spawn(|| {
                            let ev = Rc::new(sylvan::sync::Event::new());
                            for i in 0..50 {
                                let ev = ev.clone();
                                sylvan::spawn(move || {
                                    if i % 2 == 0 {
                                        ev.wait();
                                    } else {
                                        sylvan::sleep(Duration::from_secs(60));
                                    }
                                });
                            }
                            sylvan::sleep(Duration::from_millis(1));
                        })
                    })
                    .collect();
                for t in ths {
                    join_within(t, LIMIT);
                }
            }
        };
        burst();
        let (f0, m0) = (fds(), maps());
        for _ in 0..4 {
            burst();
        }
        let (f1, m1) = (fds(), maps());
        println!("PROBE fds {f0}->{f1} maps {m0}->{m1}");
        assert_eq!(f1, f0, "fds leaked");
        // glibc may keep a few arenas around: allow a small slack
        assert!(m1 <= m0 + 8, "mappings leaked: {m0} -> {m1}");
        return;
    }
    let out = child_ok(
        "probes8::t24_many_short_lived_hub_threads_leak_no_mappings_or_fds",
        NAME,
    );
    assert!(out.contains("PROBE fds"), "{out}");
}

#[test]
fn t25_main_panicking_with_greenlets_alive_still_runs_their_destructors() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let th = std::thread::spawn(move || {
        quiet();
        for _ in 0..10 {
            let f = Drops(d.clone());
            sylvan::spawn(move || {
                let _f = f;
                sylvan::sleep(Duration::from_secs(3600));
            });
        }
        let f = Drops(d.clone());
        sylvan::spawn(move || drop(f));
        sylvan::sleep(Duration::from_millis(1));
        std::panic::panic_any("main gives up");
    });
    let t = Instant::now();
    while !th.is_finished() {
        assert!(t.elapsed() < LIMIT, "HANG");
        std::thread::sleep(Duration::from_millis(2));
    }
    let e = th.join().unwrap_err();
    assert_eq!(e.downcast_ref::<&str>(), Some(&"main gives up"));
    assert_eq!(drops.load(Ordering::SeqCst), 11);
}

#[test]
fn t26_job_spawning_into_its_callers_hub_until_it_is_gone() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = stdmpsc::channel::<(usize, usize)>();
    let (d, r2) = (drops.clone(), ran.clone());
    on_thread(LIMIT, move || {
        let handle = sylvan::Handle::current();
        let (started_tx, started_rx) = sylvan::mpsc::channel::<()>();
        let r3 = r2.clone();
        sylvan::spawn(move || {
            sylvan::spawn_blocking(move || {
                let (mut ok, mut gone) = (0, 0);
                let _ = started_tx.send(());
                let t = Instant::now();
                while t.elapsed() < LIMIT {
                    // at most 256 spawned and not yet run (each queued
                    // greenlet holds a mapped stack)
                    if ok - r3.load(Ordering::SeqCst) >= 256 {
                        std::thread::yield_now();
                        if !handle.is_alive() {
                            // the final check below still gets HubGone
                        } else {
                            continue;
                        }
                    }
                    let f = Drops(d.clone());
                    let r4 = r3.clone();
                    match handle.spawn(move || {
                        let _f = f;
                        r4.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(()) => ok += 1,
                        Err(sylvan::HubGone) => {
                            gone += 1;
                            break;
                        }
                    }
                }
                let _ = done_tx.send((ok, gone));
            })
        });
        started_rx.recv().unwrap();
        // run some of them, then end with the job still spawning
        let t = Instant::now();
        while r2.load(Ordering::SeqCst) < 2000 && t.elapsed() < LIMIT {
            sylvan::sleep(Duration::from_micros(200));
        }
    });
    let (ok, gone) = done_rx
        .recv_timeout(LIMIT)
        .expect("HANG: job never saw HubGone");
    assert_eq!(gone, 1);
    assert!(ran.load(Ordering::SeqCst) >= 2000);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        ok + gone,
        "every closure dropped once"
    );
}

#[test]
fn t27_burst_of_handle_spawns_past_the_map_limit_is_an_error_not_a_crash() {
    const NAME: &str = "t27";
    if is_child(NAME) {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let handle = sylvan::Handle::current();
        let keep = handle.keep_alive();
        let (d, r) = (drops.clone(), ran.clone());
        let th = std::thread::spawn(move || {
            for _ in 0..40_000 {
                let f = Drops(d.clone());
                let r = r.clone();
                handle
                    .spawn(move || {
                        let _f = f;
                        r.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
            }
            drop(keep);
        });
        // the burst lands in one batch of the loop
        sylvan::sleep(Duration::from_millis(300));
        th.join().unwrap();
        let t = Instant::now();
        while drops.load(Ordering::SeqCst) < 40_000 && t.elapsed() < LIMIT {
            sylvan::sleep(Duration::from_millis(5));
        }
        println!(
            "PROBE ran={} dropped={}",
            ran.load(Ordering::SeqCst),
            drops.load(Ordering::SeqCst)
        );
        assert_eq!(drops.load(Ordering::SeqCst), 40_000);
        return;
    }
    let (ok, stdout, stderr) = child_run(
        "probes8::t27_burst_of_handle_spawns_past_the_map_limit_is_an_error_not_a_crash",
        NAME,
        Duration::from_secs(30),
    );
    let tail: String = stderr.lines().rev().take(6).collect::<Vec<_>>().join("\n");
    assert!(ok, "{stdout}\n{tail}");
}

#[test]
fn t28_three_deep_spawn_chain_from_destructors_at_teardown() {
    // g1 is killed at exit; its destructor spawns g2, whose captured value
    // spawns g3 when dropped, and so on: every captured value is dropped.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    on_thread(LIMIT, move || {
        struct Chain(Arc<AtomicUsize>, u32);
        impl Drop for Chain {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                if self.1 > 0 {
                    let next = Chain(self.0.clone(), self.1 - 1);
                    sylvan::spawn(move || drop(next));
                }
            }
        }
        let c = Chain(d, 3);
        sylvan::spawn(move || {
            let _c = c;
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::yield_now();
    });
    assert_eq!(drops.load(Ordering::SeqCst), 4);
}

#[test]
fn t29_thread_exit_with_a_running_stream_server_closes_its_connections() {
    use std::io::Read;
    let (addr_tx, addr_rx) = stdmpsc::channel();
    let (go_tx, go_rx) = stdmpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let served = Rc::new(std::cell::Cell::new(0));
        let s2 = served.clone();
        let server = sylvan::net::StreamServer::new(l, move |c, _| {
            s2.set(s2.get() + 1);
            let _ = (&c).read(&mut [0u8; 8]);
        })
        .start()
        .unwrap();
        addr_tx.send(server.local_addr().unwrap()).unwrap();
        bounded(|| crate::util::yield_until("5 handlers", || served.get() == 5));
        // keep the server alive in a greenlet; end the thread
        sylvan::spawn(move || {
            let _server = server;
            sylvan::sleep(Duration::from_secs(3600));
        });
        go_tx.send(()).unwrap();
    });
    let addr = addr_rx.recv_timeout(LIMIT).unwrap();
    let clients: Vec<_> = (0..5)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    go_rx.recv_timeout(LIMIT).unwrap();
    join_within(th, LIMIT);
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let n = c.read(&mut [0u8; 8]).expect("EOF, not a timeout");
        assert_eq!(n, 0);
    }
    // the listener is closed too
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn t30_orphaned_result_panicking_on_drop_does_not_cost_a_pool_thread() {
    const NAME: &str = "t30";
    if is_child(NAME) {
        sylvan::set_blocking_threads(1);
        quiet();
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb dropped unconsumed");
            }
        }
        let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
        let g = sylvan::spawn(move || {
            let b = sylvan::spawn_blocking(move || {
                let _ = gate_rx.recv_timeout(LIMIT);
                Bomb
            });
            std::mem::forget(b);
        });
        sylvan::yield_now();
        g.kill();
        gate_tx.send(()).unwrap();
        // the orphaned Bomb is dropped on the pool thread; the pool must
        // still run jobs
        let r = sylvan::with_timeout(Duration::from_secs(3), || sylvan::spawn_blocking(|| 5));
        println!("PROBE after={r:?}");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    }
    let (_, stdout, stderr) = child_run(
        "probes8::t30_orphaned_result_panicking_on_drop_does_not_cost_a_pool_thread",
        NAME,
        LIMIT,
    );
    assert!(stdout.contains("PROBE after=Ok(5)"), "{stdout}\n{stderr}");
}

#[test]
fn t31_ping_pong_between_two_hubs_loses_no_wakeup() {
    const N: u32 = 5000;
    let (a_tx, a_rx) = sylvan::mpsc::channel::<u32>();
    let (b_tx, b_rx) = sylvan::mpsc::channel::<u32>();
    let ponger = std::thread::spawn(move || {
        // answers from a greenlet while main waits on its join
        let g = sylvan::spawn(move || {
            let mut n = 0;
            while let Ok(v) = a_rx.recv() {
                b_tx.send(v + 1).unwrap();
                n += 1;
            }
            n
        });
        g.join().unwrap()
    });
    let r = on_thread(LIMIT, move || {
        let ticks = Rc::new(std::cell::Cell::new(0u32));
        let t2 = ticks.clone();
        // a second greenlet keeps the hub switching meanwhile
        let ticker = sylvan::spawn(move || {
            loop {
                t2.set(t2.get() + 1);
                sylvan::sleep(Duration::from_micros(500));
            }
        });
        let mut v = 0;
        for _ in 0..N {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
        }
        ticker.kill();
        drop(a_tx);
        (v, ticks.get())
    });
    assert_eq!(r.0, N);
    let t = Instant::now();
    while !ponger.is_finished() {
        assert!(t.elapsed() < LIMIT, "HANG: ponger");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(ponger.join().unwrap(), N);
}

#[test]
fn t32_bursty_producers_into_a_parked_main_exact_count() {
    let total = on_thread(LIMIT, || {
        let (tx, rx) = sylvan::mpsc::channel::<u64>();
        let producers: Vec<_> = (0..6u64)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        tx.send(p * 100_000 + i).unwrap();
                        if i % 997 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // main alone on its hub, parking in recv whenever the queue is dry
        let (mut n, mut sum) = (0u64, 0u64);
        for v in rx.iter() {
            n += 1;
            sum += v;
        }
        for p in producers {
            p.join().unwrap();
        }
        (n, sum)
    });
    let expect: u64 = (0..6u64)
        .map(|p| (0..20_000u64).map(|i| p * 100_000 + i).sum::<u64>())
        .sum();
    assert_eq!(total, (120_000, expect));
}

/// A gate that pool jobs can wait on until it opens (or `LIMIT` passes).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (m, cv) = &*self.0;
        let g = m.lock().unwrap();
        let _ = cv.wait_timeout_while(g, LIMIT, |open| !*open).unwrap();
    }
    fn open(&self) {
        let (m, cv) = &*self.0;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
}

#[test]
fn t33_kills_racing_with_job_completion_drop_every_result_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let jobs = Arc::new(AtomicUsize::new(0));
    let (d, j) = (drops.clone(), jobs.clone());
    let (killed, returned) = on_thread(LIMIT, move || {
        bounded(|| {
            let (mut killed, mut returned) = (0, 0);
            for i in 0..300u64 {
                let (d, j) = (d.clone(), j.clone());
                let g = sylvan::spawn(move || {
                    // (a greenlet killed before it starts submits no job,
                    // and one killed before a thread took its job has it
                    // dropped unrun: the jobs that ran are counted)
                    sylvan::spawn_blocking(move || {
                        j.fetch_add(1, Ordering::SeqCst);
                        let spin = Instant::now();
                        while spin.elapsed() < Duration::from_micros(i % 5 * 40) {
                            std::hint::spin_loop();
                        }
                        Drops(d)
                    })
                });
                for _ in 0..(i % 4) {
                    sylvan::yield_now();
                }
                g.kill();
                match g.join() {
                    Ok(v) => {
                        returned += 1;
                        drop(v);
                    }
                    Err(e) => {
                        assert!(e.is_killed(), "{e}");
                        killed += 1;
                    }
                }
            }
            (killed, returned)
        })
    });
    assert_eq!(killed + returned, 300);
    let t = Instant::now();
    while drops.load(Ordering::SeqCst) < jobs.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < LIMIT,
            "results dropped: {} of {}",
            drops.load(Ordering::SeqCst),
            jobs.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(50));
    let jobs = jobs.load(Ordering::SeqCst);
    assert!(jobs >= returned, "{jobs} jobs ran, {returned} returned");
    assert_eq!(drops.load(Ordering::SeqCst), jobs, "a result dropped twice");
}

#[test]
fn t34_thread_exit_with_queued_and_running_pool_jobs() {
    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Gate::default();
    let (d, st, g2) = (drops.clone(), started.clone(), gate.clone());
    on_thread(LIMIT, move || {
        for _ in 0..60 {
            let (d, st, g2) = (d.clone(), st.clone(), g2.clone());
            sylvan::spawn(move || {
                sylvan::spawn_blocking(move || {
                    st.fetch_add(1, Ordering::SeqCst);
                    g2.wait();
                    Drops(d)
                })
            });
        }
        sylvan::yield_now();
        sylvan::sleep(Duration::from_millis(10));
        let t = Instant::now();
        while st.load(Ordering::SeqCst) == 0 {
            assert!(t.elapsed() < LIMIT, "no job started");
            std::thread::sleep(Duration::from_millis(1));
        }
        // the thread ends: 60 callers parked, most jobs still queued
    });
    gate.open();
    // The jobs a thread had started run on, their results dropped on the
    // pool; the queued ones, whose callers are gone, never run (as
    // documented).
    let caught_up = || {
        sylvan::stats().thread_pool_queue == 0
            && drops.load(Ordering::SeqCst) == started.load(Ordering::SeqCst)
    };
    let t = Instant::now();
    while !caught_up() {
        assert!(
            t.elapsed() < LIMIT,
            "orphaned jobs: started {} dropped {}",
            started.load(Ordering::SeqCst),
            drops.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(caught_up(), "a job started late");
    let started = started.load(Ordering::SeqCst);
    assert!(
        (1..=sylvan::blocking_threads()).contains(&started),
        "{started} jobs ran"
    );
}

#[test]
fn t35_greenlet_handles_kept_in_a_tls_outliving_the_hub() {
    const NAME: &str = "t35";
    if is_child(NAME) {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let th = std::thread::spawn(move || {
            thread_local! {
                static KEPT: RefCell<Vec<sylvan::Greenlet<Drops>>> = const { RefCell::new(Vec::new()) };
            }
            // touched before the hub exists: dropped after its teardown
            KEPT.with(|k| k.borrow_mut().clear());
            let done = {
                let d = d.clone();
                sylvan::spawn(move || Drops(d))
            };
            let parked = {
                let d = d.clone();
                sylvan::spawn(move || {
                    let f = Drops(d);
                    sylvan::sleep(Duration::from_secs(3600));
                    f
                })
            };
            sylvan::sleep(Duration::from_millis(2));
            assert!(done.is_dead());
            let unstarted = {
                let d = d.clone();
                sylvan::spawn(move || Drops(d))
            };
            let unstarted_capture = Drops(d.clone());
            let unstarted2 = sylvan::spawn(move || unstarted_capture);
            KEPT.with(|k| k.borrow_mut().extend([done, parked, unstarted, unstarted2]));
        });
        join_within(th, LIMIT);
        // done's value, parked's local, unstarted2's capture
        println!("PROBE drops={}", drops.load(Ordering::SeqCst));
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        return;
    }
    let out = child_ok(
        "probes8::t35_greenlet_handles_kept_in_a_tls_outliving_the_hub",
        NAME,
    );
    assert!(out.contains("PROBE drops=3"), "{out}");
}

#[test]
fn t36_cross_thread_types_are_send() {
    // (Greenlet<T> and the sync types hold raw record pointers or `Rc`s,
    // so they are !Send by construction; only the positive side is checked.)
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<sylvan::Handle>();
    sync::<sylvan::Handle>();
    send::<sylvan::KeepAlive>();
    send::<sylvan::HubGone>();
    send::<sylvan::mpsc::Sender<String>>();
    sync::<sylvan::mpsc::Sender<String>>();
    send::<sylvan::mpsc::Receiver<String>>();
    send::<sylvan::mpsc::OneshotSender<String>>();
    send::<sylvan::mpsc::OneshotReceiver<String>>();
}

#[test]
fn t37_reply_channel_of_an_unrun_handle_spawn_reports_disconnect() {
    // A caller that sends work with a oneshot for the reply learns that the
    // work did not run: the closure (and its sender) is dropped at teardown.
    let (htx, hrx) = stdmpsc::channel();
    let (go_tx, go_rx) = stdmpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        htx.send(sylvan::Handle::current()).unwrap();
        // the OS thread blocks outside sylvan: its hub never turns again
        let _ = go_rx.recv_timeout(LIMIT);
    });
    let handle: sylvan::Handle = hrx.recv_timeout(LIMIT).unwrap();
    let r = on_thread(LIMIT, move || {
        bounded(|| {
            let (tx, rx) = sylvan::mpsc::oneshot::<u32>();
            handle
                .spawn(move || {
                    let _ = tx.send(42);
                })
                .unwrap();
            go_tx.send(()).unwrap();
            // main parks in recv; the target ends without running the work
            rx.recv()
        })
    });
    join_within(th, LIMIT);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn t38_senders_racing_with_the_receivers_thread_exit_conserve_values() {
    for round in 0..5 {
        let drops = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = sylvan::mpsc::channel::<Drops>();
        let rec = received.clone();
        let target = std::thread::spawn(move || {
            let rx = Rc::new(rx);
            // several greenlets receive; the thread ends after a while with
            // them parked and values possibly still queued
            for _ in 0..4 {
                let (rx, rec) = (rx.clone(), rec.clone());
                sylvan::spawn(move || {
                    while let Ok(v) = rx.recv() {
                        rec.fetch_add(1, Ordering::SeqCst);
                        drop(v);
                        sylvan::yield_now();
                    }
                });
            }
            let t = Instant::now();
            while rec.load(Ordering::SeqCst) < 500 * (round + 1) && t.elapsed() < LIMIT {
                sylvan::sleep(Duration::from_micros(300));
            }
        });
        let ended = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (tx, drops) = (tx.clone(), drops.clone());
                let (received, ended) = (received.clone(), ended.clone());
                std::thread::spawn(move || {
                    let mut attempts = 0usize;
                    loop {
                        // at most ~20,000 values queued per sender
                        if attempts > received.load(Ordering::SeqCst) + 20_000
                            && !ended.load(Ordering::SeqCst)
                        {
                            std::thread::yield_now();
                            continue;
                        }
                        attempts += 1;
                        if tx.send(Drops(drops.clone())).is_err() {
                            return attempts;
                        }
                        if attempts.is_multiple_of(256) {
                            std::thread::yield_now();
                        }
                        if attempts > 5_000_000 {
                            return attempts;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        join_within(target, LIMIT);
        ended.store(true, Ordering::SeqCst);
        let mut attempts = 0;
        for s in senders {
            let t = Instant::now();
            while !s.is_finished() {
                assert!(t.elapsed() < LIMIT, "HANG: sender");
                std::thread::sleep(Duration::from_millis(2));
            }
            attempts += s.join().unwrap();
        }
        assert!(
            attempts < 4 * 5_000_000,
            "a sender never saw the receiver gone"
        );
        assert_eq!(
            drops.load(Ordering::SeqCst),
            attempts,
            "round {round}: every value dropped once"
        );
        assert!(received.load(Ordering::SeqCst) >= 500 * (round + 1));
    }
}
