//! Probe round 41: user values with panicking (or blocking) destructors,
//! everywhere sylvan holds them.
//!
//! Round 40 found that greenlet-locals were dropped as one `Vec` inside one
//! `catch_unwind` (two panicking destructors aborted). This round looks for
//! the same shape elsewhere: every place sylvan owns user values and drops
//! them - a greenlet's value (detached, dropped after death, joined), its
//! body dropped unrun (killed before it starts, `spawn_later` cancelled,
//! `killall`, `Pool::kill`), link closures dropped unrun (`unlink_all`, at
//! thread exit), queue items (`close` keeps them, as documented; a dropped
//! queue drops its buffer as a `VecDeque` would), `AsyncResult`, `Mutex`,
//! `mpsc` items, `Handle::spawn` jobs at teardown, `spawn_blocking` results
//! of a killed caller, `imap`/`imap_unordered` results of a dropped
//! iterator, the `StreamServer` handler's captured state, greenlet-locals -
//! with destructors that panic (one, two, three) and destructors that block
//! (sleep, a sylvan `Mutex`, a socket read) or spawn and kill greenlets.
//!
//! What can abort runs in a re-executed child. A collection the user owns
//! (a `Queue`, a `Receiver`, a `Vec`) that drops two panicking items aborts
//! as a `Vec` does in std: not flagged. A value in the frame of a greenlet
//! that is killed (an item in a killed putter's hands) is a local of an
//! unwinding frame: a panic in its destructor aborts as in std; not
//! flagged either.
//!
//! Found, and fixed since (each failed or aborted before the fix); sylvan
//! now drops user values it holds one by one in `catch_unwind`s of their
//! own (`drop_each`), hands the first panic on to the caller, and reports
//! it on stderr where a second panic would abort (an unwinding caller, the
//! thread's teardown):
//! * `unlink_all` dropped the removed link closures as one `Vec`: two
//!   panicking captures aborted.
//! * `killall` stopped at the first unstarted greenlet whose body panicked
//!   on drop: the rest were never killed.
//! * `Pool::kill` marked every member shot, then a panicking unstarted body
//!   cut the loop: the rest stayed alive and a later kill waited forever.
//! * A dropped `imap`/`imap_unordered` iterator dropped its finished
//!   results as one `Slab`: two panicking results aborted.
//! * At thread exit, link closures of a greenlet killed by the teardown,
//!   the body of a greenlet that never started, and `Handle::spawn` jobs
//!   never run were dropped unguarded, inside a thread-local destructor:
//!   one panicking capture aborted.
//! * `spawn_blocking`: a result that arrived just before its caller was
//!   killed was dropped in the caller's unwind: a panicking result aborted.
//! * Dropping the last `StreamServer` handle: the handler's captured state
//!   went with the accept loop's kill unwind, where a panicking destructor
//!   aborted.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sylvan::sync::{AsyncResult, Channel, JoinableQueue, LifoQueue, Mutex, Queue};

use crate::util::{bounded, child_texts, in_child, quiet, tcp_pair};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

/// A value whose destructor counts itself and, when armed, panics with
/// its tag.
#[derive(Debug)]
struct Boom {
    hits: Rc<Cell<usize>>,
    armed: bool,
    tag: &'static str,
}

impl Boom {
    fn new(hits: &Rc<Cell<usize>>, tag: &'static str) -> Boom {
        Boom {
            hits: hits.clone(),
            armed: true,
            tag,
        }
    }
    fn calm(hits: &Rc<Cell<usize>>) -> Boom {
        Boom {
            hits: hits.clone(),
            armed: false,
            tag: "calm",
        }
    }
}

impl Drop for Boom {
    fn drop(&mut self) {
        self.hits.set(self.hits.get() + 1);
        if self.armed {
            panic!("{}", self.tag);
        }
    }
}

/// [`Boom`] that is `Send`, counting in a static.
#[derive(Debug)]
struct SBoom(&'static AtomicUsize, &'static str);

impl Drop for SBoom {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("{}", self.1);
    }
}

/// The panic message of a payload.
fn msg(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// The hub still works: spawn, sleep, a queue handoff, a join.
fn hub_works() {
    let q = Rc::new(Queue::unbounded());
    let q2 = q.clone();
    let g = sylvan::spawn(move || {
        sylvan::sleep(MS);
        q2.put(7).unwrap();
        5
    });
    assert_eq!(q.get(), Some(7));
    assert_eq!(g.join().unwrap(), 5);
    assert_eq!(sylvan::stats().alive, 0, "{:?}", sylvan::dump());
}

/// Failures the error policy sees on this hub, counted.
fn count_failures() -> Rc<Cell<usize>> {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |_| {
        n2.set(n2.get() + 1)
    })));
    n
}

// ------------------------------------------------------- greenlet values

/// A detached greenlet's value is dropped in the greenlet: its panicking
/// destructor becomes that greenlet's failure, reported once.
#[test]
fn detached_value_panicking_drop_is_reported_once() {
    let r = child_texts(
        "probes41::detached_value_panicking_drop_is_reported_once",
        "p41-detached",
        || {
            let hits = Rc::new(Cell::new(0));
            let h = hits.clone();
            drop(sylvan::spawn(move || Boom::new(&h, "value-boom-41")));
            sylvan::sleep(5 * MS);
            assert_eq!(hits.get(), 1);
            hub_works();
        },
    );
    if let Some((_, err)) = r {
        assert_eq!(err.matches("value-boom-41").count(), 1, "{err}");
    }
}

/// A value left in the record when its handle is dropped after death is
/// dropped by the dropper, whose panic it is (as std would); a joined value
/// is the joiner's. Once each; the hub unharmed.
#[test]
fn value_dropped_with_handle_or_after_join_panics_in_dropper() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        let g = sylvan::spawn(move || Boom::new(&h, "late-drop"));
        assert!(g.wait(None));
        let r = catch_unwind(AssertUnwindSafe(|| drop(g)));
        assert_eq!(msg(&*r.unwrap_err()), "late-drop");
        assert_eq!(hits.get(), 1);

        let h = hits.clone();
        let v = sylvan::spawn(move || Boom::new(&h, "joined"))
            .join()
            .unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| drop(v)));
        assert_eq!(msg(&*r.unwrap_err()), "joined");
        assert_eq!(hits.get(), 2);
        hub_works();
    });
}

/// A value whose destructor blocks (sleeps, waits for a sylvan `Mutex`,
/// reads a socket) and spawns and kills greenlets: dropped in its detached
/// greenlet, which may block; nothing is reported.
#[test]
fn detached_value_with_blocking_destructor_runs_to_the_end() {
    struct Slow {
        lock: Rc<Mutex<u32>>,
        sock: sylvan::net::TcpStream,
        victim: sylvan::Greenlet<()>,
        done: Rc<Cell<usize>>,
    }
    impl Drop for Slow {
        fn drop(&mut self) {
            use std::io::Read;
            sylvan::sleep(MS);
            *self.lock.lock() += 1;
            let mut b = [0u8; 1];
            (&self.sock).read_exact(&mut b).unwrap();
            let d = self.done.clone();
            sylvan::spawn(move || d.set(d.get() + 10));
            self.victim.kill();
            self.done.set(self.done.get() + 1);
        }
    }
    bounded(|| {
        let failures = count_failures();
        let lock = Rc::new(Mutex::new(0));
        let (c, s) = tcp_pair();
        let done = Rc::new(Cell::new(0));
        let victim = sylvan::spawn(|| sylvan::sleep(HOUR));
        let held = lock.lock();
        let (l2, d2) = (lock.clone(), done.clone());
        drop(sylvan::spawn(move || Slow {
            lock: l2,
            sock: s,
            victim,
            done: d2,
        }));
        sylvan::sleep(5 * MS);
        drop(held);
        sylvan::sleep(5 * MS);
        assert_eq!(done.get(), 0, "the destructor waits for the socket");
        use std::io::Write;
        (&c).write_all(b"x").unwrap();
        assert!(crate::util::wait_for(Duration::from_secs(2), || done.get() == 11));
        assert_eq!(*lock.lock(), 1);
        assert_eq!(failures.get(), 0);
        hub_works();
    });
}

// ------------------------------------------------------- bodies unrun

/// A greenlet killed before it starts (and a `spawn_later` cancelled):
/// its body is dropped by the killer, whose panic it is; once; the greenlet
/// is dead as killed and the hub unharmed.
#[test]
fn unstarted_body_dropped_by_kill_panics_in_killer_once() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let b = Boom::new(&hits, "body-boom");
        let g = sylvan::spawn(move || drop(b));
        let r = catch_unwind(AssertUnwindSafe(|| g.kill()));
        assert_eq!(msg(&*r.unwrap_err()), "body-boom");
        assert_eq!(hits.get(), 1);
        assert!(g.is_dead());
        assert!(g.join().unwrap_err().is_killed());

        let b = Boom::new(&hits, "later-boom");
        let g = sylvan::spawn_later(HOUR, move || drop(b));
        let r = catch_unwind(AssertUnwindSafe(|| g.kill_nowait()));
        assert_eq!(msg(&*r.unwrap_err()), "later-boom");
        assert_eq!(hits.get(), 2);
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(sylvan::stats().timers, 1, "only bounded's own timer");
        hub_works();
    });
}

/// `killall` over two greenlets that have not started, the first of whose
/// body panics when dropped: the panic escapes from inside the kill loop,
/// and the second greenlet is never killed (it runs later).
#[test]
fn killall_kills_every_greenlet_past_a_panicking_body() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let b = Boom::new(&hits, "first-body");
        let ran = Rc::new(Cell::new(false));
        let r2 = ran.clone();
        let gs = vec![
            sylvan::spawn(move || drop(b)),
            sylvan::spawn(move || r2.set(true)),
        ];
        let r = catch_unwind(AssertUnwindSafe(|| {
            sylvan::killall(&gs, Some(Duration::from_millis(100)))
        }));
        assert!(r.is_err(), "the body's panic surfaces in the caller");
        assert_eq!(hits.get(), 1);
        sylvan::sleep(2 * MS);
        assert!(
            gs[1].is_dead() && !ran.get(),
            "the second greenlet must be killed, not run (ran: {})",
            ran.get()
        );
    });
}

/// `Pool::kill` marks every member as shot, then kills them one by one: a
/// panicking unstarted body cuts the loop, and the members after it stay
/// alive, marked shot, so a second `kill` never shoots them and waits for
/// ever.
#[test]
fn pool_kill_past_a_panicking_unstarted_member() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let pool = sylvan::pool::Pool::new(4);
        let b = Boom::new(&hits, "member-body");
        pool.spawn(move || {
            let _b = b;
            sylvan::sleep(HOUR)
        });
        pool.spawn(|| sylvan::sleep(HOUR));
        let r = catch_unwind(AssertUnwindSafe(|| pool.kill()));
        assert!(r.is_err(), "the body's panic surfaces in the caller");
        assert_eq!(hits.get(), 1);
        let again = sylvan::with_timeout(Duration::from_millis(300), || pool.kill());
        let left = pool.len();
        // Clean up whatever way: the second member only dies through its
        // own handle now (not kept), or at thread exit.
        assert!(
            again.is_ok(),
            "a second Pool::kill hung ({left} member(s) left)"
        );
        assert_eq!(left, 0);
    });
}

// ------------------------------------------------------- link closures

/// `unlink_all` drops the removed callbacks in the caller: one panicking
/// capture is the caller's panic (the greenlet and hub unharmed, no
/// callback runs).
#[test]
fn unlink_all_with_one_panicking_capture_panics_in_caller() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let ran = Rc::new(Cell::new(0));
        let g = sylvan::spawn(|| sylvan::sleep(HOUR));
        let (b, r1, r2) = (Boom::new(&hits, "link-boom"), ran.clone(), ran.clone());
        g.link(move |_| {
            let _b = &b;
            r1.set(r1.get() + 1)
        });
        let c = Boom::calm(&hits);
        g.link_exception(move |_| {
            let _c = &c;
            r2.set(r2.get() + 1)
        });
        let r = catch_unwind(AssertUnwindSafe(|| g.unlink_all()));
        assert_eq!(msg(&*r.unwrap_err()), "link-boom");
        assert_eq!(hits.get(), 2, "both closures dropped");
        g.kill();
        sylvan::sleep(2 * MS);
        assert_eq!(ran.get(), 0);
        assert!(g.join().unwrap_err().is_killed());
        hub_works();
    });
}

/// Two link closures whose captures panic on drop, removed by one
/// `unlink_all`: they are dropped as one `Vec`, so the second panics while
/// the first unwinds, and the process aborts (the round-40 bug's shape).
#[test]
fn unlink_all_with_two_panicking_captures_does_not_abort() {
    in_child(
        "probes41::unlink_all_with_two_panicking_captures_does_not_abort",
        "p41-unlink2",
        || {
            quiet();
            let hits = Rc::new(Cell::new(0));
            let g = sylvan::spawn(|| sylvan::sleep(HOUR));
            for tag in ["link-a", "link-b"] {
                let b = Boom::new(&hits, tag);
                g.link(move |_| {
                    let _b = &b;
                });
            }
            let r = catch_unwind(AssertUnwindSafe(|| g.unlink_all()));
            assert!(r.is_err());
            assert_eq!(hits.get(), 2);
            g.kill();
            hub_works();
        },
    );
}

/// A `link_value` callback of a greenlet that panicked never runs: the
/// loop drops it, catching its panic and reporting it; a destructor there
/// that blocks panics (documented) and is reported the same way.
#[test]
fn unrun_link_value_closure_dropped_on_hub_is_reported() {
    struct Sleeps(Rc<Cell<usize>>);
    impl Drop for Sleeps {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            sylvan::sleep(MS);
        }
    }
    let r = child_texts(
        "probes41::unrun_link_value_closure_dropped_on_hub_is_reported",
        "p41-linkvalue",
        || {
            let hits = Rc::new(Cell::new(0));
            let g = sylvan::spawn(|| -> u32 { panic!("body-fails-41") });
            let b = Boom::new(&hits, "unrun-link-boom-41");
            g.link_value(move |_| {
                let _b = &b;
            });
            let s = Sleeps(hits.clone());
            g.link_value(move |_| {
                let _s = &s;
            });
            assert!(g.wait(None));
            sylvan::sleep(2 * MS);
            assert_eq!(hits.get(), 2);
            assert!(g.join().unwrap_err().panic().is_some());
            hub_works();
        },
    );
    if let Some((_, err)) = r {
        // std's hook prints the panic at its site (the hub is no greenlet
        // stack), and sylvan reports it once.
        let reports: Vec<&str> = err.lines().filter(|l| l.contains("left behind")).collect();
        assert_eq!(reports.len(), 2, "{err}");
        assert!(reports[0].contains("unrun-link-boom-41"), "{err}");
        assert!(reports[1].contains("made from the hub itself"), "{err}");
        assert_eq!(err.matches("body-fails-41").count(), 1, "{err}");
    }
}

// ------------------------------------------------------- thread exit

static TEARDOWN_LINK: AtomicUsize = AtomicUsize::new(0);

/// At thread exit a greenlet still parked is killed; its link closures
/// are then dropped unrun (no new greenlets at teardown), outside any
/// `catch_unwind`, in a thread-local destructor: one panicking capture
/// aborts the process.
#[test]
fn teardown_with_a_panicking_link_capture_does_not_abort() {
    in_child(
        "probes41::teardown_with_a_panicking_link_capture_does_not_abort",
        "p41-td-link",
        || {
            let t = std::thread::spawn(|| {
                let g = sylvan::spawn(|| sylvan::sleep(HOUR));
                let b = SBoom(&TEARDOWN_LINK, "teardown-link");
                g.link(move |_| {
                    let _b = &b;
                });
                drop(g);
                sylvan::yield_now(); // it parks for an hour: killed at exit
            });
            assert!(t.join().is_ok());
            assert_eq!(TEARDOWN_LINK.load(Ordering::SeqCst), 1);
            hub_works();
        },
    );
}

static TEARDOWN_BODY: AtomicUsize = AtomicUsize::new(0);

/// At thread exit a greenlet that never started is cancelled; its body is
/// dropped outside any `catch_unwind`, in a thread-local destructor: one
/// panicking capture aborts the process (main's greenlet-locals, dropped
/// just before, are guarded).
#[test]
fn teardown_with_a_panicking_unstarted_body_does_not_abort() {
    in_child(
        "probes41::teardown_with_a_panicking_unstarted_body_does_not_abort",
        "p41-td-body",
        || {
            let t = std::thread::spawn(|| {
                let b = SBoom(&TEARDOWN_BODY, "teardown-body");
                drop(sylvan::spawn(move || drop(b)));
            });
            assert!(t.join().is_ok());
            assert_eq!(TEARDOWN_BODY.load(Ordering::SeqCst), 1);
            hub_works();
        },
    );
}

static TEARDOWN_JOB: AtomicUsize = AtomicUsize::new(0);

/// A `Handle::spawn` job the hub never ran is dropped at its teardown
/// ("dropped with the hub", documented), outside any `catch_unwind`, in a
/// thread-local destructor: one panicking capture aborts the process.
#[test]
fn teardown_with_a_panicking_pending_remote_job_does_not_abort() {
    in_child(
        "probes41::teardown_with_a_panicking_pending_remote_job_does_not_abort",
        "p41-td-job",
        || {
            let (htx, hrx) = std::sync::mpsc::channel();
            let (gotx, gorx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                htx.send(sylvan::Handle::current()).unwrap();
                // Never runs the loop again: the job stays queued.
                gorx.recv().unwrap();
            });
            let handle = hrx.recv().unwrap();
            let b = SBoom(&TEARDOWN_JOB, "teardown-job");
            handle.spawn(move || drop(b)).unwrap();
            gotx.send(()).unwrap();
            assert!(t.join().is_ok());
            assert_eq!(TEARDOWN_JOB.load(Ordering::SeqCst), 1);
            // And a job sent once the hub is gone comes back to the sender.
            let b = SBoom(&TEARDOWN_JOB, "hub-gone-job");
            let r = catch_unwind(AssertUnwindSafe(|| handle.spawn(move || drop(b))));
            assert!(r.is_err(), "dropped in the sender, whose panic it is");
            assert_eq!(TEARDOWN_JOB.load(Ordering::SeqCst), 2);
            hub_works();
        },
    );
}

static JOB_GONE: AtomicUsize = AtomicUsize::new(0);

/// `Handle::spawn` to a hub that is gone: the job comes back with
/// `HubGone` and is dropped in the sender, whose panic it is (once).
#[test]
fn handle_spawn_to_a_gone_hub_drops_the_job_in_the_sender() {
    let handle = std::thread::spawn(sylvan::Handle::current).join().unwrap();
    assert!(!handle.is_alive());
    let b = SBoom(&JOB_GONE, "gone-job");
    let r = catch_unwind(AssertUnwindSafe(|| handle.spawn(move || drop(b))));
    assert_eq!(msg(&*r.unwrap_err()), "gone-job");
    assert_eq!(JOB_GONE.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------- greenlet-locals

sylvan::greenlet_local! {
    static LA: Cell<Option<Boom>> = Cell::new(None);
    static LB: Cell<Option<Boom>> = Cell::new(None);
    static LC: Cell<Option<Boom>> = Cell::new(None);
    static LD: Cell<Option<Boom>> = Cell::new(None);
}

/// Three panicking greenlet-locals, and a destructor that sets another
/// local: all dropped once, the first panic is the greenlet's failure; a
/// killed greenlet's are reported; main's at thread exit too. No abort.
#[test]
fn three_panicking_greenlet_locals_and_one_made_in_a_destructor() {
    struct SetsLocal(Rc<Cell<usize>>);
    impl Drop for SetsLocal {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            let h = self.0.clone();
            LD.with(|d| d.set(Some(Boom::new(&h, "made-late-41"))));
        }
    }
    sylvan::greenlet_local! {
        static LS: Cell<Option<SetsLocal>> = Cell::new(None);
    }
    let r = child_texts(
        "probes41::three_panicking_greenlet_locals_and_one_made_in_a_destructor",
        "p41-locals",
        || {
            let hits = Rc::new(Cell::new(0));
            let h = hits.clone();
            let g = sylvan::spawn(move || {
                LA.with(|c| c.set(Some(Boom::new(&h, "local-a-41"))));
                LB.with(|c| c.set(Some(Boom::new(&h, "local-b-41"))));
                LC.with(|c| c.set(Some(Boom::new(&h, "local-c-41"))));
                LS.with(|c| c.set(Some(SetsLocal(h.clone()))));
            });
            let e = g.join().unwrap_err();
            assert_eq!(e.panic().unwrap().message(), "local-a-41");
            assert_eq!(hits.get(), 5, "a, b, c, the setter and the late one");

            let h = hits.clone();
            let g = sylvan::spawn(move || {
                LA.with(|c| c.set(Some(Boom::new(&h, "killed-a-41"))));
                LB.with(|c| c.set(Some(Boom::new(&h, "killed-b-41"))));
                sylvan::sleep(HOUR)
            });
            sylvan::yield_now();
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(hits.get(), 7);
            hub_works();

            let t = std::thread::spawn(|| {
                let hits = Rc::new(Cell::new(0));
                LA.with(|c| c.set(Some(Boom::new(&hits, "main-a-41"))));
                LB.with(|c| c.set(Some(Boom::new(&hits, "main-b-41"))));
                LC.with(|c| c.set(Some(Boom::new(&hits, "main-c-41"))));
                sylvan::sleep(MS);
            });
            assert!(t.join().is_ok());
        },
    );
    if let Some((_, err)) = r {
        assert!(err.contains("killed-a-41"), "{err}");
        assert!(err.contains("main-a-41"), "{err}");
        assert!(
            err.contains("main's greenlet-local values panicked"),
            "{err}"
        );
    }
}

// ------------------------------------------------------- sync

/// `close` keeps every queue's items (documented: getters drain them) and
/// hands a waiting putter's item back; nothing is dropped by sylvan. A
/// queue dropped with one panicking item panics in the dropper, once.
#[test]
fn queue_close_keeps_items_and_drop_panics_in_dropper() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let q = Queue::unbounded();
        q.put(Boom::new(&hits, "q")).unwrap();
        q.close();
        let lq = LifoQueue::unbounded();
        lq.put(Boom::new(&hits, "lq")).unwrap();
        lq.close();
        let jq = JoinableQueue::unbounded();
        jq.put(Boom::new(&hits, "jq")).unwrap();
        jq.close();
        assert_eq!(hits.get(), 0, "close drops nothing");
        for (name, item) in [("q", q.get()), ("lq", lq.get()), ("jq", jq.get())] {
            let r = catch_unwind(AssertUnwindSafe(|| drop(item.expect("drained"))));
            assert_eq!(msg(&*r.unwrap_err()), name);
        }
        assert_eq!(hits.get(), 3);
        jq.task_done();
        assert_eq!(jq.unfinished(), 0);

        // A channel's putter waiting in `put` gets its item back on close.
        let ch = Rc::new(Channel::new());
        let (ch2, h) = (ch.clone(), hits.clone());
        let putter = sylvan::spawn(move || ch2.put(Boom::new(&h, "ch")).err().map(|c| c.0));
        sylvan::yield_now();
        ch.close();
        let back = putter.join().unwrap().expect("handed back");
        assert_eq!(hits.get(), 3);
        let r = catch_unwind(AssertUnwindSafe(|| drop(back)));
        assert_eq!(msg(&*r.unwrap_err()), "ch");

        // A bounded queue's putter timed out: the item comes back.
        let bq = Queue::bounded(1);
        bq.put(Boom::calm(&hits)).unwrap();
        let back = bq.put_timeout(Boom::new(&hits, "bq"), MS).unwrap_err();
        assert_eq!(hits.get(), 4);
        let r = catch_unwind(AssertUnwindSafe(|| drop(back)));
        assert_eq!(msg(&*r.unwrap_err()), "bq");

        let q = Queue::unbounded();
        q.put(Boom::new(&hits, "dropped-queue")).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| drop(q)));
        assert_eq!(msg(&*r.unwrap_err()), "dropped-queue");
        drop(bq);
        assert_eq!(hits.get(), 7);
        hub_works();
    });
}

/// `AsyncResult` values and errors, a second `set` handed back, `Mutex`
/// contents: each dropped once, by whoever drops them.
#[test]
fn async_result_and_mutex_contents_drop_once_in_dropper() {
    bounded(|| {
        let hits = Rc::new(Cell::new(0));
        let r: AsyncResult<Rc<Boom>, Rc<Boom>> = AsyncResult::new();
        r.set(Rc::new(Boom::new(&hits, "ar-value"))).unwrap();
        let back = r.set(Rc::new(Boom::new(&hits, "ar-second"))).unwrap_err();
        let e = catch_unwind(AssertUnwindSafe(|| drop(back)));
        assert_eq!(msg(&*e.unwrap_err()), "ar-second");
        let got = r.get().unwrap();
        drop(got);
        assert_eq!(hits.get(), 1);
        let e = catch_unwind(AssertUnwindSafe(|| drop(r)));
        assert_eq!(msg(&*e.unwrap_err()), "ar-value");

        let f: AsyncResult<u8, Rc<Boom>> = AsyncResult::new();
        f.fail(Rc::new(Boom::new(&hits, "ar-error"))).unwrap();
        let e = catch_unwind(AssertUnwindSafe(|| drop(f)));
        assert_eq!(msg(&*e.unwrap_err()), "ar-error");

        let m = Mutex::new(Boom::new(&hits, "mutex"));
        drop(m.lock());
        let e = catch_unwind(AssertUnwindSafe(|| drop(m)));
        assert_eq!(msg(&*e.unwrap_err()), "mutex");
        assert_eq!(hits.get(), 4);
        hub_works();
    });
}

static MPSC_HITS: AtomicUsize = AtomicUsize::new(0);

/// `mpsc` items left when the receiver drops are dropped by it (its
/// panic); the sender on another thread then gets its value back.
#[test]
fn mpsc_items_left_at_receiver_drop_panic_in_dropper() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(SBoom(&MPSC_HITS, "mpsc-item")).unwrap();
            tx
        });
        let tx = sylvan::spawn_blocking(move || t.join().unwrap());
        let r = catch_unwind(AssertUnwindSafe(|| drop(rx)));
        assert_eq!(msg(&*r.unwrap_err()), "mpsc-item");
        assert_eq!(MPSC_HITS.load(Ordering::SeqCst), 1);
        let back = std::thread::spawn(move || {
            let e = tx.send(SBoom(&MPSC_HITS, "mpsc-back")).unwrap_err();
            catch_unwind(AssertUnwindSafe(|| drop(e))).is_err()
        });
        assert!(sylvan::spawn_blocking(move || back.join().unwrap()));
        assert_eq!(MPSC_HITS.load(Ordering::SeqCst), 2);
        hub_works();
    });
}

// ------------------------------------------------------- spawn_blocking

static ORPHAN: AtomicUsize = AtomicUsize::new(0);
/// Set by the job of the test below as it starts.
static ORPHAN_STARTED: AtomicUsize = AtomicUsize::new(0);

/// A caller killed while its job still runs: the result is dropped on the
/// pool thread, its panic caught and reported there (documented). (A job
/// not started yet when its caller is killed is not run at all: the kill
/// waits for this one to start.)
#[test]
fn spawn_blocking_result_of_caller_killed_early_dropped_on_pool_thread() {
    let r = child_texts(
        "probes41::spawn_blocking_result_of_caller_killed_early_dropped_on_pool_thread",
        "p41-sb-early",
        || {
            quiet();
            let g = sylvan::spawn(|| {
                let v = sylvan::spawn_blocking(|| {
                    ORPHAN_STARTED.store(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    SBoom(&ORPHAN, "orphan-41")
                });
                std::mem::forget(v);
            });
            assert!(crate::util::wait_for(Duration::from_secs(2), || {
                ORPHAN_STARTED.load(Ordering::SeqCst) == 1
            }));
            g.kill();
            assert!(crate::util::wait_for(Duration::from_secs(2), || {
                ORPHAN.load(Ordering::SeqCst) == 1
            }));
            hub_works();
        },
    );
    if let Some((_, err)) = r {
        assert!(err.contains("outside its caller's reach"), "{err}");
    }
}

static ARRIVED: AtomicUsize = AtomicUsize::new(0);
/// Set by the job of the test below as it returns.
static RETURNING: AtomicUsize = AtomicUsize::new(0);
/// Set by that test once its caller greenlet has parked for the result.
static CALLER_PARKED: AtomicUsize = AtomicUsize::new(0);

/// A caller killed after its job's result arrived but before it ran: the
/// result sits in the oneshot's queue and is dropped with the receiver in
/// the caller's kill unwind (not on the pool thread, as documented), where
/// a panicking destructor aborts the process.
#[test]
fn spawn_blocking_result_arrived_before_kill_does_not_abort() {
    in_child(
        "probes41::spawn_blocking_result_arrived_before_kill_does_not_abort",
        "p41-sb-arrived",
        || {
            quiet();
            let g = sylvan::spawn(|| {
                let v = sylvan::spawn_blocking(|| {
                    // Not before the caller parked: a result there before
                    // the caller first looks is taken without parking (the
                    // caller then returns, and the kill comes too late).
                    let t = std::time::Instant::now();
                    while CALLER_PARKED.load(Ordering::SeqCst) == 0 {
                        assert!(t.elapsed() < Duration::from_secs(4), "never parked");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    RETURNING.store(1, Ordering::SeqCst);
                    SBoom(&ARRIVED, "arrived-41")
                });
                std::mem::forget(v);
            });
            sylvan::yield_now(); // parks in spawn_blocking
            CALLER_PARKED.store(1, Ordering::SeqCst);
            // The hub does not run: the job finishes and its result waits.
            // (Waiting for the job itself, not a fixed time from the spawn:
            // under load the pool's thread once took more than 100 ms to
            // start, and the kill then cancelled the job before it ran.)
            let t = std::time::Instant::now();
            while RETURNING.load(Ordering::SeqCst) == 0 {
                assert!(t.elapsed() < Duration::from_secs(4), "the job never ran");
                std::thread::sleep(Duration::from_millis(1));
            }
            // Its result is sent a few instructions after the flag.
            std::thread::sleep(Duration::from_millis(50));
            g.kill();
            assert!(crate::util::wait_for(Duration::from_secs(2), || {
                ARRIVED.load(Ordering::SeqCst) == 1
            }));
            hub_works();
        },
    );
}

// ------------------------------------------------------- pools

/// `imap_unordered` dropped early with one finished, uncollected result
/// whose destructor panics: the panic is the dropper's, once.
#[test]
fn dropped_imap_with_one_panicking_result_panics_in_dropper() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let group = sylvan::pool::Group::new();
        let h = hits.clone();
        let mut it = group.imap_unordered([false, true], move |armed| Boom {
            hits: h.clone(),
            armed,
            tag: "imap-one",
        });
        drop(it.next().unwrap().unwrap());
        sylvan::sleep(2 * MS);
        let r = catch_unwind(AssertUnwindSafe(|| drop(it)));
        assert_eq!(msg(&*r.unwrap_err()), "imap-one");
        assert_eq!(hits.get(), 2);
        assert!(group.is_empty());
        hub_works();
    });
}

/// `imap` (and `imap_unordered`) dropped early with two finished results
/// whose destructors panic: the iterator's greenlets are dropped as one
/// `Slab`, the second panic comes during the first's unwind, and the
/// process aborts.
#[test]
fn dropped_imap_with_two_panicking_results_does_not_abort() {
    in_child(
        "probes41::dropped_imap_with_two_panicking_results_does_not_abort",
        "p41-imap2",
        || {
            quiet();
            let hits = Rc::new(Cell::new(0));
            let pool = sylvan::pool::Pool::new(3);
            let h = hits.clone();
            let mut it = pool.imap([false, true, true], move |armed| Boom {
                hits: h.clone(),
                armed,
                tag: "imap-two",
            });
            drop(it.next().unwrap().unwrap());
            sylvan::sleep(2 * MS);
            let r = catch_unwind(AssertUnwindSafe(|| drop(it)));
            assert!(r.is_err());
            assert_eq!(hits.get(), 3);
            assert!(pool.is_empty());
            hub_works();
        },
    );
}

// ------------------------------------------------------- StreamServer

/// `stop`, then dropping the server: the handler closure and its captured
/// state are dropped once, by the dropper (its panic).
#[test]
fn server_handler_state_dropped_once_after_stop() {
    bounded(|| {
        quiet();
        let hits = Rc::new(Cell::new(0));
        let b = Boom::new(&hits, "handler-state");
        let server = sylvan::net::StreamServer::bind("127.0.0.1:0", move |c, p| {
            let _b = &b;
            crate::util::echo(c, p)
        })
        .unwrap()
        .start()
        .unwrap();
        let addr = server.local_addr().unwrap();
        assert_eq!(crate::util::exchange(addr, b"hi").unwrap(), b"hi");
        server.stop(Some(Duration::from_millis(200)));
        assert_eq!(hits.get(), 0);
        let r = catch_unwind(AssertUnwindSafe(|| drop(server)));
        assert_eq!(msg(&*r.unwrap_err()), "handler-state");
        assert_eq!(hits.get(), 1);
        hub_works();
    });
}

/// Dropping the last server handle without `stop` (documented: it stops
/// the server) kills the accept loop without waiting; the loop's own
/// reference to the handler is then the last, dropped during its kill
/// unwind, where the state's panicking destructor aborts the process.
#[test]
fn dropping_the_server_with_panicking_handler_state_does_not_abort() {
    in_child(
        "probes41::dropping_the_server_with_panicking_handler_state_does_not_abort",
        "p41-server-drop",
        || {
            quiet();
            let hits = Rc::new(Cell::new(0));
            let b = Boom::new(&hits, "handler-state-drop");
            let server = sylvan::net::StreamServer::bind("127.0.0.1:0", move |c, p| {
                let _b = &b;
                crate::util::echo(c, p)
            })
            .unwrap()
            .start()
            .unwrap();
            let addr = server.local_addr().unwrap();
            assert_eq!(crate::util::exchange(addr, b"hi").unwrap(), b"hi");
            let _ = catch_unwind(AssertUnwindSafe(|| drop(server)));
            sylvan::sleep(5 * MS);
            assert_eq!(hits.get(), 1);
            hub_works();
        },
    );
}
