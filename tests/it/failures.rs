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
