//! sylvan::pool: Pool and Group.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};

use crate::util::{DropFlag, Log, quiet};

const MS: Duration = Duration::from_millis(1);

/// Counts tasks running at once and remembers the most seen.
#[derive(Clone, Default)]
struct Gauge {
    now: Rc<Cell<usize>>,
    most: Rc<Cell<usize>>,
}

impl Gauge {
    fn enter(&self) -> GaugeGuard {
        self.now.set(self.now.get() + 1);
        self.most.set(self.most.get().max(self.now.get()));
        GaugeGuard(self.now.clone())
    }
}

struct GaugeGuard(Rc<Cell<usize>>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[test]
#[should_panic(expected = "Pool::new(0)")]
fn pool_of_zero_is_a_clear_error() {
    let _ = Pool::new(0);
}

#[test]
fn pool_spawn_parks_while_full_and_concurrency_never_exceeds_n() {
    let pool = Pool::new(3);
    let gauge = Gauge::default();
    let log = Log::default();
    for i in 0..20u64 {
        let (gauge, log) = (gauge.clone(), log.clone());
        pool.spawn(move || {
            let _in = gauge.enter();
            sylvan::sleep(Duration::from_micros(200 * (i % 4)));
            log.push(i.to_string());
        });
        assert!(pool.len() <= 3);
    }
    pool.join();
    assert_eq!(gauge.most.get(), 3);
    assert_eq!(log.take().len(), 20);
    assert!(pool.is_empty());
    assert_eq!(pool.free_count(), 3);
}

#[test]
fn pool_spawners_get_free_slots_in_fifo_order() {
    let pool = Pool::new(1);
    let release = Rc::new(sylvan::sync::Event::new());
    let r = release.clone();
    pool.spawn(move || r.wait());
    let log = Log::default();
    let spawners: Vec<_> = (0..3)
        .map(|i| {
            let (pool, log) = (pool.clone(), log.clone());
            sylvan::spawn(move || {
                pool.spawn(move || ()).join().unwrap();
                log.push(format!("s{i}"));
            })
        })
        .collect();
    sylvan::yield_now();
    assert!(pool.is_full());
    release.set();
    sylvan::joinall(&spawners, None);
    assert_eq!(log.take(), ["s0", "s1", "s2"]);
}

#[test]
fn map_returns_results_in_input_order_within_the_bound() {
    let pool = Pool::new(4);
    let gauge = Gauge::default();
    let g2 = gauge.clone();
    let results = pool.map(0..12u64, move |i| {
        let _in = g2.enter();
        // Later items finish first.
        sylvan::sleep(Duration::from_micros(100 * (12 - i)));
        i * 10
    });
    let values: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..12).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(gauge.most.get(), 4);
    assert!(pool.is_empty());
}

#[test]
fn a_panic_in_one_task_loses_no_other_result_and_a_kill_is_a_kill() {
    quiet();
    let pool = Pool::new(2);
    let results = pool.map(0..5, |i| {
        sylvan::yield_now();
        match i {
            1 => panic!("task {i} failed"),
            3 => std::panic::resume_unwind(Box::new(sylvan::GreenletExit)),
            _ => i,
        }
    });
    assert_eq!(results.len(), 5);
    assert_eq!(*results[0].as_ref().unwrap(), 0);
    let panic = results[1].as_ref().unwrap_err().panic().expect("a panic");
    assert_eq!(panic.message(), "task 1 failed");
    assert_eq!(*results[2].as_ref().unwrap(), 2);
    assert!(results[3].as_ref().unwrap_err().is_killed());
    assert_eq!(*results[4].as_ref().unwrap(), 4);
    assert_eq!(pool.free_count(), 2);
}

#[test]
fn imap_is_lazy_and_ordered() {
    let pool = Pool::new(2);
    let started = Rc::new(Cell::new(0));
    let s = started.clone();
    let mut it = pool.imap(0..6u64, move |i| {
        s.set(s.get() + 1);
        sylvan::sleep(Duration::from_micros(300 * (6 - i)));
        i
    });
    assert_eq!(started.get(), 0, "nothing starts before the first next");
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(started.get() <= 3, "at most the pool size runs ahead");
    let rest: Vec<u64> = it.map(Result::unwrap).collect();
    assert_eq!(rest, [1, 2, 3, 4, 5]);
    assert_eq!(started.get(), 6);
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    let pool = Pool::new(3);
    let gauge = Gauge::default();
    let g2 = gauge.clone();
    let order: Vec<u64> = pool
        .imap_unordered([30u64, 10, 20], move |ms| {
            let _in = g2.enter();
            sylvan::sleep(Duration::from_millis(ms));
            ms
        })
        .map(Result::unwrap)
        .collect();
    assert_eq!(order, [10, 20, 30]);
    // With a pool of one, it is the input order.
    let one = Pool::new(1);
    let order: Vec<u64> = one
        .imap_unordered([3u64, 1, 2], |ms| {
            sylvan::sleep(Duration::from_millis(ms));
            ms
        })
        .map(Result::unwrap)
        .collect();
    assert_eq!(order, [3, 1, 2]);
    assert_eq!(gauge.most.get(), 3);
}

#[test]
fn dropping_an_imap_early_kills_its_running_tasks() {
    let pool = Pool::new(3);
    let dropped = Rc::new(Cell::new(0));
    let d = dropped.clone();
    let mut it = pool.imap_unordered(0..100u64, move |i| {
        let _flag = DropFlag(d.clone());
        sylvan::sleep(Duration::from_millis(if i == 0 { 1 } else { 60_000 }));
        i
    });
    assert_eq!(it.next().unwrap().unwrap(), 0);
    drop(it);
    assert!(pool.join_timeout(Duration::from_secs(5)));
    // Item 0 finished; items 1 and 2 were running and are killed; item 3
    // never started (the iterator fills only when asked for more).
    assert_eq!(dropped.get(), 3);
}

#[test]
fn join_timeout_wait_available_and_free_count() {
    let pool = Pool::new(2);
    let gate = Rc::new(sylvan::sync::Event::new());
    let g = gate.clone();
    pool.spawn(move || {
        g.wait(); // runs until the checks below are done
    });
    pool.spawn(|| sylvan::sleep(5 * MS));
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.free_count(), 0);
    assert_eq!(pool.wait_available(Some(Duration::ZERO)), 0);
    let t = Instant::now();
    assert_eq!(pool.wait_available(None), 1);
    assert!(t.elapsed() >= 5 * MS);
    assert!(!pool.join_timeout(MS));
    gate.set();
    assert!(pool.join_timeout(Duration::from_secs(5)));
    assert_eq!(pool.wait_available(None), 2);
}

#[test]
fn kill_kills_every_member_and_runs_their_destructors() {
    let pool = Pool::new(5);
    let dropped = Rc::new(Cell::new(0));
    let gs: Vec<_> = (0..5)
        .map(|_| {
            let d = dropped.clone();
            pool.spawn(move || {
                let _flag = DropFlag(d);
                sylvan::sleep(Duration::from_secs(60));
            })
        })
        .collect();
    sylvan::yield_now();
    // One more that has not started yet: it never runs.
    pool.kill();
    assert_eq!(dropped.get(), 5);
    assert!(pool.is_empty());
    assert_eq!(pool.free_count(), 5);
    assert!(gs.iter().all(|g| g.is_dead()));
}

#[test]
fn group_has_no_bound_and_tracks_its_members() {
    let group = Group::new();
    let started = Rc::new(Cell::new(0));
    for _ in 0..50 {
        let s = started.clone();
        group.spawn(move || {
            s.set(s.get() + 1);
            sylvan::sleep(MS);
        });
    }
    assert_eq!(group.len(), 50);
    sylvan::yield_now();
    assert_eq!(started.get(), 50, "all run at once");
    group.join();
    assert!(group.is_empty());
    let squares: Vec<u32> = group
        .map(1..=4u32, |i| i * i)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(squares, [1, 4, 9, 16]);
    let unstarted = group.spawn(|| ());
    group.kill();
    assert!(unstarted.join().unwrap_err().is_killed());
}

#[test]
fn a_spawner_killed_while_waiting_for_a_slot_takes_none() {
    let pool = Pool::new(1);
    let release = Rc::new(sylvan::sync::Event::new());
    let r = release.clone();
    let running = pool.spawn(move || r.wait());
    let spawner = {
        let pool = pool.clone();
        sylvan::spawn(move || pool.spawn(|| ()).join().unwrap())
    };
    sylvan::yield_now();
    spawner.kill();
    release.set();
    running.join().unwrap();
    assert_eq!(pool.free_count(), 1);
    assert!(pool.is_empty());
}

// gevent's Group.kill shoots each member once (its `dying` set): a member
// that catches its kill is waited for, not shot again when another exits.
#[test]
fn pool_kill_shoots_each_member_once() {
    crate::util::bounded(|| {
        let pool = Pool::new(2);
        let shots = Rc::new(Cell::new(0));
        let catcher = {
            let shots = shots.clone();
            pool.spawn(move || {
                let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
                if r.is_err() {
                    shots.set(shots.get() + 1);
                }
                sylvan::sleep(Duration::from_millis(50));
                "caught"
            })
        };
        let plain = pool.spawn(|| sylvan::sleep(Duration::from_secs(10)));
        sylvan::yield_now();
        pool.kill();
        assert_eq!(shots.get(), 1);
        assert!(plain.join().unwrap_err().is_killed());
        assert_eq!(catcher.join().unwrap(), "caught");
        assert!(pool.is_empty());
    })
}

/// Pool members, and a server's accept loop and handlers, name the user's
/// call as their spawn site (in `dump` and failure reports), not the line
/// inside sylvan that spawns them.
#[test]
fn members_and_handlers_are_spawned_at_the_callers_site() {
    crate::util::bounded(|| {
        let here = file!();
        let sites = |ids: &[sylvan::GreenletId]| -> Vec<String> {
            let dump = sylvan::dump();
            ids.iter()
                .map(|id| {
                    let g = dump.greenlets.iter().find(|g| g.id == *id).expect("alive");
                    g.spawned_at.file().to_owned()
                })
                .collect()
        };
        let gate = Rc::new(sylvan::sync::Event::new());
        let pool = Pool::new(4);
        let group = Group::new();
        let mut ids = Vec::new();
        for g in [pool.spawn(park_on(&gate)), group.spawn(park_on(&gate))] {
            ids.push(g.id());
        }
        let gate2 = gate.clone();
        let mut imap = pool.imap(0..1, move |_| gate2.wait());
        let imapper = sylvan::spawn(move || imap.next().unwrap().unwrap());
        let gate3 = gate.clone();
        let mapper = sylvan::spawn(move || Group::new().map(0..1, move |_| gate3.wait()).len());
        ids.extend([imapper.id(), mapper.id()]);
        // The first two start their members, which then start and park.
        sylvan::yield_now();
        sylvan::yield_now();
        let all: Vec<_> = sylvan::dump()
            .greenlets
            .iter()
            .filter(|g| g.id.as_u64() != 0)
            .map(|g| g.id)
            .collect();
        assert_eq!(all.len(), 6, "{}", sylvan::dump());
        assert!(sites(&all).iter().all(|f| f == here), "{}", sylvan::dump());

        let server = sylvan::net::StreamServer::bind("127.0.0.1:0", |_s, _p| {
            sylvan::sleep(Duration::from_secs(60))
        })
        .unwrap()
        .start()
        .unwrap();
        let _client = sylvan::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        crate::util::yield_until("the handler sleeps", || {
            sylvan::dump()
                .greenlets
                .iter()
                .any(|g| g.wait == sylvan::WaitKind::Sleep)
        });
        let dump = sylvan::dump();
        let serving: Vec<_> = dump
            .greenlets
            .iter()
            .filter(|g| {
                g.name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("StreamServer"))
            })
            .map(|g| g.spawned_at.file())
            .collect();
        assert_eq!(serving, [here], "{dump}");
        let handler = dump
            .greenlets
            .iter()
            .find(|g| g.wait == sylvan::WaitKind::Sleep)
            .expect("the handler sleeps");
        assert_eq!(handler.spawned_at.file(), here, "{dump}");
        server.stop(Some(Duration::ZERO));

        gate.set();
        assert!(imapper.join().unwrap());
        assert_eq!(mapper.join().unwrap(), 1);
        pool.join();
        group.join();
    });
}

fn park_on(gate: &Rc<sylvan::sync::Event>) -> impl FnOnce() -> bool + 'static {
    let gate = gate.clone();
    move || gate.wait()
}
