//! The error policy and failure reports.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::util::{is_child, run_child};

#[test]
fn a_custom_policy_sees_each_failure_once_with_its_site() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
        s.borrow_mut().push((
            f.name.map(str::to_owned),
            f.error.to_string(),
            f.spawned_at.file().to_owned(),
        ));
    })));
    let g = sylvan::Builder::new()
        .name("worker")
        .spawn(|| panic!("bad input"))
        .unwrap();
    assert!(g.wait(None));
    let t = sylvan::spawn(|| {
        let _t = sylvan::Timeout::start(Duration::from_millis(1));
        sylvan::sleep(Duration::from_secs(5));
    });
    assert!(t.wait(None));
    let k = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(5)));
    sylvan::yield_now();
    k.kill();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0.as_deref(), Some("worker"));
    assert!(seen[0].1.contains("bad input"));
    assert!(seen[0].2.ends_with("failures.rs"));
    assert!(seen[1].1.contains("timeout"));
}

#[test]
fn a_panicking_custom_policy_harms_nothing() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {
        panic!("policy bug")
    })));
    let g = sylvan::spawn(|| panic!("first"));
    assert!(g.wait(None));
    assert_eq!(sylvan::spawn(|| 3).join().unwrap(), 3);
}

#[test]
fn blocking_on_the_hub_itself_panics_with_a_clear_message() {
    let msg = Rc::new(RefCell::new(String::new()));
    let m = msg.clone();
    // The error policy runs on the hub: a blocking call there must refuse.
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |_| {
        let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_millis(1)));
        *m.borrow_mut() = sylvan::runtime::payload_message(&*r.unwrap_err());
    })));
    let g = sylvan::spawn(|| panic!("x"));
    assert!(g.wait(None));
    assert!(
        msg.borrow().contains("made from the hub itself"),
        "{}",
        msg.borrow()
    );
    assert_eq!(sylvan::spawn(|| 1).join().unwrap(), 1);
}

#[test]
fn the_default_report_names_the_greenlet_once_and_std_prints_nothing() {
    const NAME: &str = "report";
    if is_child(NAME) {
        let g = sylvan::Builder::new()
            .name("fetcher")
            .spawn(|| panic!("page 17 is broken"))
            .unwrap();
        assert!(g.join().unwrap_err().is_panic());
        std::process::exit(0);
    }
    let out = run_child(
        "failures::the_default_report_names_the_greenlet_once_and_std_prints_nothing",
        NAME,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("page 17 is broken").count(), 1, "{stderr}");
    assert!(stderr.contains("greenlet 'fetcher'"), "{stderr}");
    assert!(stderr.contains("failures.rs"), "{stderr}");
    assert!(
        !stderr.contains("thread '"),
        "std's hook printed too: {stderr}"
    );
}

/// Under `ErrorPolicy::IgnoreObserved`, a failure whose `link_exception`
/// callback counted as its observer but never ran (the thread exited
/// before the callback's greenlet started: `Pool::join` and `joinall`
/// return when the members are dead, before their callbacks run, as in
/// gevent) is reported at teardown instead of vanishing, and so is one
/// whose callback `unlink_all` cut after the death. One whose callback
/// ran stays unreported.
#[test]
fn ignore_observed_reports_a_failure_whose_callback_never_ran() {
    const PATH: &str = "failures::ignore_observed_reports_a_failure_whose_callback_never_ran";
    if is_child("unobserved") {
        sylvan::set_error_policy(sylvan::ErrorPolicy::IgnoreObserved);
        let pool = sylvan::pool::Pool::new(2);
        let g = pool.spawn(|| -> u32 { panic!("boom nobody saw") });
        g.link_exception(|e| println!("callback saw {e}"));
        pool.join();
        // Returns now: the test thread exits, its hub cancels the callback.
        return;
    }
    if is_child("observed") {
        sylvan::set_error_policy(sylvan::ErrorPolicy::IgnoreObserved);
        let g = sylvan::spawn(|| -> u32 { panic!("boom the callback saw") });
        g.link_exception(|e| println!("callback saw {e}"));
        assert!(sylvan::wait_all(Some(Duration::from_secs(5))));
        return;
    }
    if is_child("unlinked") {
        sylvan::set_error_policy(sylvan::ErrorPolicy::IgnoreObserved);
        let g = sylvan::spawn(|| -> u32 { panic!("boom unlinked") });
        g.link_exception(|e| println!("callback saw {e}"));
        // Dies: its callback's greenlet is queued behind main, not started.
        sylvan::yield_now();
        assert!(g.is_dead());
        g.unlink_all();
        assert!(sylvan::wait_all(Some(Duration::from_secs(5))));
        println!("after wait_all");
        return;
    }
    let out = run_child(PATH, "unobserved");
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("callback saw"), "{stdout}");
    assert_eq!(stderr.matches("boom nobody saw").count(), 1, "{stderr}");

    let out = run_child(PATH, "observed");
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("callback saw"), "{stdout}");
    assert!(!stderr.contains("boom the callback saw"), "{stderr}");

    // `unlink_all` after the death cut the only observer before it ran:
    // the failure is reported, once, when the cut callback drops.
    let out = run_child(PATH, "unlinked");
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("after wait_all"), "{stdout}");
    assert!(!stdout.contains("callback saw"), "{stdout}");
    assert_eq!(stderr.matches("boom unlinked").count(), 1, "{stderr}");
}

#[inline(never)]
fn failing_leaf(x: u32) -> u32 {
    if x > 2 {
        panic!("leaf failed on {x}");
    }
    x
}

/// With `RUST_BACKTRACE=1` a failure report's backtrace is cut as std cuts
/// a thread's: from the panic to the greenlet's body, without the panic
/// hook above it or sylvan's entry and `catch_unwind`s below it, renumbered
/// from 0, with std's note. `RUST_BACKTRACE=full` keeps every frame. A
/// `spawn_blocking` job's panic is cut at the pool thread's entry.
#[test]
fn report_backtraces_are_short_unless_full_is_asked() {
    const NAME: &str = "short_backtrace";
    if is_child(NAME) {
        let g = sylvan::Builder::new()
            .name("leafy")
            .spawn(|| failing_leaf(std::hint::black_box(5)))
            .unwrap();
        sylvan::sleep(Duration::from_millis(1));
        drop(g);
        // A job of a greenlet: its report is the greenlet's.
        let g = sylvan::Builder::new()
            .name("offloader")
            .spawn(|| sylvan::spawn_blocking(|| failing_leaf(std::hint::black_box(9))))
            .unwrap();
        sylvan::sleep(Duration::from_millis(1));
        assert!(g.join().is_err());
        return;
    }
    let run = |style: &str| {
        let out = crate::util::run_child_limited(
            "failures::report_backtraces_are_short_unless_full_is_asked",
            NAME,
            &[("RUST_BACKTRACE", style)],
            Duration::from_secs(60),
        )
        .expect("the child finished");
        let (_, err) = crate::util::texts(&out);
        assert!(out.status.success(), "{err}");
        err
    };
    let short = run("1");
    let report = short
        .split("greenlet 'leafy'")
        .nth(1)
        .expect("the greenlet's report")
        .split("greenlet 'offloader'")
        .next()
        .unwrap();
    assert!(
        report.contains("leaf failed on 5\nstack backtrace:\n   0: "),
        "{short}"
    );
    assert!(report.contains("failing_leaf"), "{short}");
    for internal in [
        "sylvan_hub::hook",
        "catch_unwind",
        "sylvan_greenlet_entry",
        "begin_short",
    ] {
        assert!(!report.contains(internal), "{internal} in\n{short}");
    }
    assert!(report.contains("run with `RUST_BACKTRACE=full`"), "{short}");
    let job = short
        .split("greenlet 'offloader'")
        .nth(1)
        .expect("the job's report")
        .split("\n\n")
        .next()
        .unwrap();
    assert!(
        job.contains("leaf failed on 9") && job.contains("failing_leaf"),
        "{short}"
    );
    for internal in ["threadpool", "catch_unwind", "begin_short"] {
        assert!(!job.contains(internal), "{internal} in\n{short}");
    }
    let full = run("full");
    assert!(full.contains("failing_leaf"), "{full}");
    assert!(full.contains("catch_unwind"), "{full}");
    assert!(!full.contains("Some details are omitted"), "{full}");
}

/// Records what reaches `log` (target and level with the text).
struct Recorder(std::sync::Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {} {}", r.target(), r.level(), r.args()));
    }
    fn flush(&self) {}
}

/// With a logger installed, the hub's reports go through `log` (target
/// `sylvan`: a failure at error level, a stall of the blocking detector
/// at warn level) and not to stderr; without one they go to stderr.
#[test]
fn reports_go_through_log_when_a_logger_takes_them() {
    const NAME: &str = "reports_through_log";
    if is_child(NAME) {
        static RECORDER: Recorder = Recorder(std::sync::Mutex::new(Vec::new()));
        log::set_logger(&RECORDER).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        let g = sylvan::Builder::new()
            .name("logged")
            .spawn(|| panic!("to the log"))
            .unwrap();
        sylvan::sleep(Duration::from_millis(1));
        drop(g);
        let detector = sylvan::BlockingDetector::start(Duration::from_millis(20));
        // Hogs the hub until the detector has spoken (at most 5 s).
        let hog = sylvan::spawn(|| {
            let start = std::time::Instant::now();
            let warned = || {
                RECORDER
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains("WARN"))
            };
            while !warned() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        hog.join().unwrap();
        drop(detector);
        for line in RECORDER.0.lock().unwrap().iter() {
            println!("LOGGED {}", line.replace('\n', " | "));
        }
        return;
    }
    let out = run_child(
        "failures::reports_go_through_log_when_a_logger_takes_them",
        NAME,
    );
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(out.status.success(), "{stderr}");
    let logged: Vec<&str> = stdout
        .lines()
        // The first may follow libtest's "test ... " on its line.
        .filter_map(|l| l.split_once("LOGGED ").map(|(_, rest)| rest))
        .collect();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("sylvan ERROR greenlet 'logged'") && l.contains("to the log")),
        "{logged:?}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("sylvan WARN sylvan: greenlet") && l.contains("blocked the hub")),
        "{logged:?}"
    );
    assert!(!stderr.contains("to the log"), "{stderr}");
    assert!(!stderr.contains("blocked the hub"), "{stderr}");
}

/// A destructor that panics while its greenlet already unwinds makes std
/// abort ("panic in a destructor during cleanup"). The hook had recorded
/// both panics for a report that will never be made: it says them on
/// stderr before the abort, instead of leaving only std's one line.
#[test]
fn an_abort_from_a_panic_in_cleanup_says_what_panicked() {
    const NAME: &str = "panic_in_cleanup";
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("the second, from a destructor");
        }
    }
    if is_child(NAME) {
        let g = sylvan::spawn(|| {
            let _d = PanicsOnDrop;
            panic!("the first, from the body");
        });
        let _ = g.join();
        unreachable!("the process aborts first");
    }
    let out = run_child(
        "failures::an_abort_from_a_panic_in_cleanup_says_what_panicked",
        NAME,
    );
    let (_, stderr) = crate::util::texts(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("a panic in cleanup"), "{stderr}");
    assert!(stderr.contains("the first, from the body"), "{stderr}");
    assert!(stderr.contains("the second, from a destructor"), "{stderr}");
}
