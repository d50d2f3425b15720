//! A pool of workers where some fail: failures are reported through
//! `link_exception` callbacks as they happen, and a summary is printed.
//!
//! `cargo run --example link_exception`
//!
//! Each job "fetches" a record: most succeed after a short sleep; a few
//! panic on bad input, and one is too slow for its `Timeout`, which escapes
//! the job and ends it as timed out. A kill is not a failure for links (as
//! in gevent), so the job killed at the end reports nothing.
//!
//! The hub's error policy is `IgnoreObserved`: failures that a
//! `link_exception` callback observed are not printed a second time by the
//! hub.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sylvan::pool::Pool;
use sylvan::sync::Event;

#[derive(Default)]
struct Summary {
    ok: Vec<(u32, String)>,
    failed: Vec<(u32, String)>,
}

fn fetch(id: u32) -> String {
    sylvan::sleep(Duration::from_millis(u64::from(id % 5) * 3));
    if id % 7 == 3 {
        panic!("record {id}: malformed header");
    }
    if id == 8 {
        // Too slow: the timeout escapes the job and ends it.
        let _deadline = sylvan::Timeout::start(Duration::from_millis(5));
        sylvan::sleep(Duration::from_secs(10));
    }
    format!("record {id} ({} bytes)", 100 + id * 17)
}

fn main() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::IgnoreObserved);
    let summary = Rc::new(RefCell::new(Summary::default()));
    let pool = Pool::new(4);

    const JOBS: u32 = 12;
    // `spawn` parks main while the pool is full: jobs run (and fail) while
    // the rest are being submitted.
    println!("running {} jobs on a pool of {}:", JOBS + 1, pool.size());
    let mut jobs = Vec::new();
    for id in 0..JOBS {
        let g = pool.spawn(move || fetch(id));
        let s = summary.clone();
        g.link_exception(move |err| {
            println!("  job {id} failed: {err}");
            s.borrow_mut().failed.push((id, err.to_string()));
        });
        let s = summary.clone();
        g.link_value(move |v| s.borrow_mut().ok.push((id, v.clone())));
        jobs.push(g);
    }

    // One more that never finishes on its own: killed below, which links
    // treat as a normal exit (no failure reported).
    let never = Rc::new(Event::new());
    let n = never.clone();
    let stuck = pool.spawn(move || {
        n.wait();
        String::new()
    });
    stuck.link_exception(|err| println!("  (not printed: a kill is no failure) {err}"));

    // join waits for each job and for its link callbacks.
    for g in jobs {
        let _ = g.join();
    }
    stuck.kill();
    assert!(stuck.join().unwrap_err().is_killed());
    pool.join();

    let s = summary.borrow();
    println!();
    println!(
        "summary: {} succeeded, {} failed, 1 killed",
        s.ok.len(),
        s.failed.len()
    );
    let mut ok = s.ok.clone();
    ok.sort();
    for (id, v) in &ok {
        println!("  ok     {id:>2}: {v}");
    }
    let mut failed = s.failed.clone();
    failed.sort();
    for (id, e) in &failed {
        println!("  failed {id:>2}: {e}");
    }
}
