//! dump(), the blocking detector and hub statistics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sylvan::{BlockingDetector, BlockingReport, WaitKind};

use crate::util::stall_until;

fn collect() -> (Arc<Mutex<Vec<BlockingReport>>>, BlockingDetector) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let d = BlockingDetector::with_callback(Duration::from_millis(100), move |rep| {
        r.lock().unwrap().push(rep.clone())
    });
    (reports, d)
}

#[test]
fn a_greenlet_blocking_the_hub_is_reported_once_with_its_spawn_site() {
    let (reports, detector) = collect();
    let seen = reports.clone();
    let line = line!() + 1;
    let g = sylvan::Builder::new()
        .name("blocker")
        .spawn(move || stall_until(|| !seen.lock().unwrap().is_empty()))
        .unwrap();
    let id = g.id();
    g.join().unwrap();
    // give the watchdog a tick to settle, without blocking the hub
    sylvan::sleep(Duration::from_millis(50));
    drop(detector);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r.greenlet, id);
    let site = r.spawned_at.expect("a spawned greenlet has a site");
    assert!(site.file().ends_with("inspect.rs"), "{site}");
    assert!(
        (line..line + 4).contains(&site.line()),
        "{site} vs line {line}"
    );
    assert!(r.blocked_for >= Duration::from_millis(100));
    assert_eq!(r.name.as_deref(), Some("blocker"));
    let text = r.to_string();
    assert!(
        text.contains(&format!("greenlet {id} 'blocker' (spawned at")),
        "{text}"
    );
    assert!(text.contains("has blocked the hub"), "{text}");
}

/// Main blocking the hub is reported as main, with no name.
#[test]
fn main_blocking_the_hub_is_reported_without_a_name() {
    let (reports, detector) = collect();
    stall_until(|| !reports.lock().unwrap().is_empty());
    sylvan::sleep(Duration::from_millis(50));
    drop(detector);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].greenlet.as_u64(), 0);
    assert_eq!(reports[0].name, None);
    assert!(reports[0].to_string().contains("(main)"), "{}", reports[0]);
}

#[test]
fn an_idle_hub_is_not_reported() {
    let (reports, detector) = collect();
    sylvan::sleep(Duration::from_millis(300));
    let g = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(250)));
    g.join().unwrap();
    drop(detector);
    assert!(reports.lock().unwrap().is_empty());
}

#[test]
fn dump_shows_what_each_greenlet_waits_on_and_forgets_the_dead() {
    let sleeper = sylvan::Builder::new()
        .name("sleeper")
        .spawn(|| sylvan::sleep(Duration::from_secs(60)))
        .unwrap();
    let sleeper_id = sleeper.id();
    let sleeper = std::rc::Rc::new(sleeper);
    let s2 = sleeper.clone();
    let joiner = sylvan::Builder::new()
        .name("joiner")
        .spawn(move || s2.wait(None))
        .unwrap();
    let timed = sylvan::spawn(|| {
        let _t = sylvan::Timeout::start(Duration::from_secs(60));
        sylvan::sleep(Duration::from_secs(60));
    });
    let quick = sylvan::spawn(|| ());
    sylvan::sleep(Duration::from_millis(20));
    assert!(quick.is_dead());
    let dump = sylvan::dump();
    let find = |id| dump.greenlets.iter().find(|g| g.id == id);
    assert!(find(quick.id()).is_none(), "dead greenlets are forgotten");
    let s = find(sleeper_id).unwrap();
    assert_eq!(s.wait, WaitKind::Sleep);
    assert_eq!(s.state, "suspended");
    assert!(s.waiting_for.unwrap() < Duration::from_secs(5));
    assert!(s.spawned_at.file().ends_with("inspect.rs"));
    assert_eq!(s.switches, 1);
    let j = find(joiner.id()).unwrap();
    assert_eq!(j.wait, WaitKind::Join(sleeper_id));
    assert!(find(timed.id()).unwrap().timeout_armed);
    assert!(!s.timeout_armed);
    let main = &dump.greenlets[0];
    assert_eq!(main.id.as_u64(), 0);
    assert_eq!(main.state, "running");
    let text = dump.to_string();
    assert!(
        text.contains("sleeper") && text.contains("the join of greenlet"),
        "{text}"
    );
    sleeper.kill();
    timed.kill();
    joiner.join().unwrap();
}

#[test]
fn counters_move_as_expected() {
    let before = sylvan::stats();
    let gs: Vec<_> = (0..10).map(|_| sylvan::spawn(sylvan::yield_now)).collect();
    let mid = sylvan::stats();
    assert_eq!(mid.spawned, before.spawned + 10);
    assert_eq!(mid.alive, before.alive + 10);
    assert_eq!(mid.ready, 10);
    let t = sylvan::Timeout::start(Duration::from_secs(60));
    assert_eq!(sylvan::stats().timers, before.timers + 1);
    drop(t);
    sylvan::joinall(&gs, None);
    let after = sylvan::stats();
    assert_eq!(after.alive, before.alive);
    assert!(
        after.switches >= mid.switches + 20,
        "each yielded once: two resumes each"
    );
    assert_eq!(after.timers, before.timers);
}

#[test]
fn dump_names_socket_event_queue_and_thread_pool_waits() {
    use std::rc::Rc;
    let listener = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = sylvan::net::TcpStream::connect(addr).unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let reader = sylvan::spawn(move || {
        let mut buf = [0u8; 8];
        let _ = std::io::Read::read(&mut &server_side, &mut buf);
    });
    let ev = Rc::new(sylvan::sync::Event::new());
    let e2 = ev.clone();
    let ev_waiter = sylvan::spawn(move || e2.wait());
    let q: Rc<sylvan::sync::Queue<u8>> = Rc::new(sylvan::sync::Queue::unbounded());
    let q2 = q.clone();
    let getter = sylvan::spawn(move || q2.get());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let pooled = sylvan::spawn(move || sylvan::spawn_blocking(move || rx.recv()));
    sylvan::sleep(Duration::from_millis(20));
    let dump = sylvan::dump();
    let wait_of = |id| dump.greenlets.iter().find(|g| g.id == id).unwrap().clone();
    let r = wait_of(reader.id());
    assert!(
        matches!(r.wait, WaitKind::Io { op: "read", .. }),
        "{:?}",
        r.wait
    );
    assert_eq!(r.peer, Some(client.local_addr().unwrap()));
    assert_eq!(wait_of(ev_waiter.id()).wait, WaitKind::Sync("an event"));
    assert!(
        matches!(wait_of(getter.id()).wait, WaitKind::Sync(s) if s.contains("get")),
        "{:?}",
        wait_of(getter.id()).wait
    );
    assert_eq!(wait_of(pooled.id()).wait, WaitKind::ThreadPool);
    let text = dump.to_string();
    assert!(text.contains("socket read on fd"), "{text}");
    // release everyone
    drop(client);
    ev.set();
    q.put(1).unwrap();
    tx.send(()).unwrap();
    reader.join().unwrap();
    ev_waiter.join().unwrap();
    assert_eq!(getter.join().unwrap(), Some(1));
    assert!(pooled.join().unwrap().is_ok());
}

#[test]
fn stats_show_thread_pool_jobs_waiting_for_a_thread() {
    // More blocked jobs than the pool has threads: the rest must queue.
    let n = sylvan::blocking_threads() + 4;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let gs: Vec<_> = (0..n)
        .map(|_| {
            let rx = rx.clone();
            sylvan::spawn(move || sylvan::spawn_blocking(move || rx.lock().unwrap().recv().is_ok()))
        })
        .collect();
    let mut seen = 0;
    for _ in 0..1000 {
        seen = sylvan::stats().thread_pool_queue;
        if seen >= 2 {
            break;
        }
        sylvan::sleep(Duration::from_millis(2));
    }
    assert!(seen >= 2, "queue depth {seen}");
    for _ in 0..n {
        tx.send(()).unwrap();
    }
    for g in gs {
        assert!(g.join().unwrap());
    }
}
