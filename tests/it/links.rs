//! link, link_value, link_exception, unlink_all.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::util::{Log, quiet};

#[test]
fn links_fire_once_in_registration_order_with_join_waiters() {
    let log = Log::default();
    let g = Rc::new(sylvan::spawn(|| {
        sylvan::sleep(Duration::from_millis(2));
        7
    }));
    for i in 0..3 {
        let log = log.clone();
        g.link(move |o| match o {
            sylvan::Outcome::Returned(v) => log.push(format!("link{i}:{v}")),
            _ => log.push("wrong"),
        });
    }
    // A join waiter registered between links is notified in its place.
    let g2 = g.clone();
    let l = log.clone();
    let waiter = sylvan::spawn(move || {
        g2.wait(None);
        l.push("waiter");
    });
    sylvan::yield_now(); // the waiter registers now
    let l = log.clone();
    g.link_value(move |v| l.push(format!("value:{v}")));
    let l = log.clone();
    g.link_exception(move |_| l.push("exception"));
    waiter.join().unwrap();
    sylvan::sleep(Duration::from_millis(5));
    assert_eq!(
        log.take(),
        ["link0:7", "link1:7", "link2:7", "waiter", "value:7"]
    );
    let g = Rc::try_unwrap(g).unwrap();
    assert_eq!(g.join().unwrap(), 7);
    sylvan::sleep(Duration::from_millis(2));
    assert!(log.take().is_empty(), "links fire once");
}

#[test]
fn link_on_a_dead_greenlet_still_fires() {
    let g = sylvan::spawn(|| "done");
    assert!(g.wait(None));
    let hit = Rc::new(Cell::new(false));
    let h = hit.clone();
    g.link_value(move |v| {
        assert_eq!(*v, "done");
        h.set(true)
    });
    assert_eq!(
        g.join().unwrap(),
        "done",
        "join waits for the callback that borrows the value"
    );
    assert!(hit.get());
}

#[test]
fn link_exception_fires_on_panic_and_escaped_timeout_not_on_kill() {
    quiet();
    let log = Log::default();
    let panics = sylvan::spawn(|| panic!("bad page"));
    let times_out = sylvan::spawn(|| {
        let _t = sylvan::Timeout::start(Duration::from_millis(1));
        sylvan::sleep(Duration::from_secs(60));
    });
    let killed = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
    for (name, g) in [
        ("panic", &panics),
        ("timeout", &times_out),
        ("kill", &killed),
    ] {
        let l = log.clone();
        g.link_exception(move |e| {
            l.push(format!(
                "{name}:{}",
                if e.is_timeout() { "timeout" } else { "panic" }
            ))
        });
        let l = log.clone();
        g.link(move |_| l.push(format!("{name}:link")));
    }
    sylvan::yield_now();
    killed.kill();
    assert!(panics.wait(None) && times_out.wait(None));
    sylvan::sleep(Duration::from_millis(2));
    let mut got = log.take();
    got.sort();
    assert_eq!(
        got,
        [
            "kill:link",
            "panic:link",
            "panic:panic",
            "timeout:link",
            "timeout:timeout"
        ]
    );
    assert!(times_out.join().unwrap_err().is_timeout());
}

#[test]
fn unlink_all_inside_a_callback_stops_those_not_yet_started() {
    let log = Log::default();
    let g = Rc::new(sylvan::spawn(|| ()));
    let g2 = g.clone();
    let l = log.clone();
    g.link(move |_| {
        l.push("first");
        g2.unlink_all();
    });
    let l = log.clone();
    g.link(move |_| l.push("second"));
    let l = log.clone();
    g.link(move |_| l.push("third"));
    g.wait(None);
    sylvan::sleep(Duration::from_millis(2));
    assert_eq!(log.take(), ["first"]);
}

#[test]
fn link_callbacks_may_block_and_start_one_after_another() {
    let log = Log::default();
    let g = sylvan::spawn(|| 1);
    let l = log.clone();
    g.link(move |_| {
        l.push("a start");
        sylvan::sleep(Duration::from_millis(5));
        l.push("a end");
    });
    let l = log.clone();
    g.link(move |_| l.push("b"));
    assert_eq!(g.join().unwrap(), 1);
    assert_eq!(log.take(), ["a start", "b", "a end"]);
}
