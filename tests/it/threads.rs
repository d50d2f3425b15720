//! Hubs per thread, handles, and thread exit.

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn thread_exit_kills_live_greenlets_and_runs_their_destructors() {
    let (tx, rx) = mpsc::channel::<&'static str>();
    std::thread::spawn(move || {
        struct Tell(mpsc::Sender<&'static str>);
        impl Drop for Tell {
            fn drop(&mut self) {
                // reaching the hub from a destructor during teardown is fine
                let _ = sylvan::current();
                sylvan::sleep(Duration::from_millis(1));
                let _ = self.0.send("dropped");
            }
        }
        let t = Tell(tx.clone());
        let started = sylvan::spawn(move || {
            let _t = t;
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::yield_now();
        assert!(started.is_started());
        let t2 = Tell(tx);
        let unstarted = sylvan::spawn(move || {
            let _t = t2;
        });
        drop(unstarted);
        drop(started);
        // the thread ends with one greenlet parked and one never started
    })
    .join()
    .unwrap();
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got, ["dropped", "dropped"]);
}

#[test]
fn handle_spawns_on_another_threads_hub() {
    let handle = sylvan::Handle::current();
    let keep = handle.keep_alive();
    let (tx, rx) = mpsc::channel();
    let other = std::thread::spawn(move || {
        handle
            .spawn(move || {
                tx.send(sylvan::current_name()).unwrap();
            })
            .unwrap();
        drop(keep);
    });
    let mut got = None;
    for _ in 0..5000 {
        if let Ok(v) = rx.try_recv() {
            got = Some(v);
            break;
        }
        sylvan::sleep(Duration::from_millis(1));
    }
    other.join().unwrap();
    assert!(got.is_some(), "the handle's greenlet ran on this hub");
}

#[test]
fn a_handle_to_a_finished_thread_says_so() {
    let h = std::thread::spawn(sylvan::Handle::current).join().unwrap();
    assert!(!h.is_alive());
    assert_eq!(h.spawn(|| ()), Err(sylvan::HubGone));
}
