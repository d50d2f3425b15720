//! gevent 26.9.0's test__event.py, test__queue.py, test__pool.py,
//! test__semaphore.py, test__lock.py and test__threadpool.py, method by
//! method. Each gevent method is either covered by an existing test (named
//! here), not applicable (why), or ported below under a name that starts
//! with the gevent class's subject and ends with the method's name.
//! gevent's `Queue` is sylvan's `JoinableQueue`, its `SimpleQueue`
//! sylvan's `Queue`; `apply` is `spawn(f).join()`; the thread pool is
//! `spawn_blocking`; the lock is `Mutex` (sylvan has no RLock). Mixins
//! (`AbstractGenericWaitTestCase`: `test_returns_none_after_timeout`,
//! `test_outer_timeout_is_not_lost`; `AbstractGenericGetTestCase`: those
//! and `test_raises_timeout_number`, `test_raises_timeout_Timeout`,
//! `test_raises_timeout_Timeout_exc_customized`) are listed per class.
//! P49 = probes49::{every_wait_returns_after_its_own_timeout,
//! outer_timeout_is_not_lost_in_any_wait}.
//!
//! test__event.py
//! - TestEventWait: returns_none / outer_timeout: P49 (Event::wait_timeout);
//!   test_cover (str()): N/A, a repr.
//! - TestGeventWaitOnEvent: returns_none / outer_timeout: P49 (sylvan::wait);
//!   test_set_during_wait: gevent::e03_set_during_wait_then_clear.
//! - TestAsyncResultWait, TestWaitAsyncResult: returns_none / outer_timeout:
//!   ported, event_test_async_result_wait_returns_after_timeout_and_outer_timeout.
//! - TestAsyncResultGet: raises_timeout_number / outer_timeout: P49
//!   (AsyncResult::get_timeout); raises_timeout_Timeout: ported,
//!   get_interrupt_test_raises_timeout_timeout_all_kinds; _exc_customized:
//!   N/A (a sylvan Timeout carries no exception of the user's choosing).
//! - TestAsyncResult: test_link: N/A (rawlink/unlink of None); test_set_exc:
//!   probes44::async_result_get_timeout_exception_and_second_set;
//!   test_get_repeated_does_not_accumulate_traceback: N/A (Python traceback;
//!   repeated gets of a failure: probes21::async_result_failure_seen_by_every_accessor);
//!   test_set: gevent::a02_timeout_zero_around_get; test_set_with_timeout:
//!   gevent2::sp05_async_result_set_while_waiters_time_out; test_nonblocking_get:
//!   probes21::async_result_failure_seen_by_every_accessor (peek None, get_timeout).
//! - TestAsyncResultCrossThread / TestEventCrossThread: test_cross_thread_use,
//!   _bg, _timed, _timed_bg: ported, event_test_cross_thread_use (8 variants);
//!   test_cross_thread_use_set_in_bg, _set_in_bg2:
//!   probes49::handle_job_from_a_thread_started_later_wakes_the_hub and
//!   threads_gevent::handle_wakes_main_parked_on_an_event_with_keep_alive;
//!   test_cross_thread_callback_can_run_before_scheduling_returns: N/A (a
//!   proxy of the libev loop's run_callback_threadsafe and rawlink).
//! - TestAsyncResultAsLinkTarget: test_set, test_set_exception:
//!   gevent::a03_async_result_as_link_target.
//! - TestEvent_SetThenClear{,100,1000}.test: gevent::e01_set_then_clear_wakes_all.
//! - TestWait.test, TestWait_notimeout.test, TestWait_count1.test: ported,
//!   event_test_wait_variants; TestWait_count2.test:
//!   gevent::e06_wait_count_over_events_and_results (and in the port).
//! - TestEventBasics: test_weakref: N/A; test_wait_while_notifying:
//!   gevent::e04_wait_while_notifying_runs_after_waiters;
//!   test_gevent_wait_twice_when_already_set: gevent::e05_wait_twice_on_set_event.
//!
//! test__queue.py (UsesOnlyOneItemMixin runs for SimpleQueue, Channel, Queue)
//! - test_put_nowait_simple: ported, queue_test_put_nowait_simple (Queue,
//!   JoinableQueue, Channel).
//! - test_put_nowait_unlock: Queue: gevent::q11_nowait_unlock; Channel:
//!   ported, channel_test_put_nowait_unlock (documented difference: a
//!   Channel is not "full" while a getter waits).
//! - test_send_last: gevent::q03_multiple_waiters / q02_channel_zero_max_size.
//! - test_init_and_bottleneck_methods, test_subclass_assign_queue,
//!   test_subscript (all five kinds), TestGetInterrupt*.test_weak_reference:
//!   N/A (subclass hooks, generic aliases, weakrefs).
//! - TestSimpleQueue / TestQueue: test_get_nowait_simple, test_get_nowait_unlock,
//!   test_senders_that_die: ported, queue_test_get_nowait_simple_unlock_and_senders_that_die;
//!   test_send_first: probes33::p05_close_with_peekers (try_peek/peek/get
//!   of one item); test_peek_empty: P49 (peek_timeout) and
//!   probes33::p09_peek_from_a_lone_main_reports_the_deadlock; test_peek_multi_greenlet:
//!   probes33::p01_peekers_wake_for_every_put_path_and_queue_kind;
//!   test_max_size: gevent::q01_max_size; test_multiple_waiters:
//!   gevent::q03_multiple_waiters; test_waiters_that_cancel,
//!   test_two_waiters_one_dies, test_two_bogus_waiters:
//!   gevent::q04_waiters_that_cancel.
//! - TestChannel: test_get_nowait_unlock_channel: gevent::q11_nowait_unlock;
//!   test_zero_max_size: gevent::q02_channel_zero_max_size; test_send:
//!   gevent::q05_channel_test_send_order; test_wait: gevent::q06_channel_test_wait_order;
//!   test_iterable: ported, channel_test_iterable.
//! - TestQueue: test_task_done, test_issue_45: gevent::q07_joinable_queue;
//!   test_shutdown_all_methods_in_one_thread: ported, queue_test_shutdown_all_methods_in_one_thread;
//!   test_shutdown_immediate_all_methods_in_one_thread: N/A (no immediate
//!   shutdown that drops the items; `close` always lets getters drain).
//! - TestGetInterrupt{,JoinableQueue,LifoQueue,PriorityQueue,Channel,SimpleQueue},
//!   TestPutInterrupt{,JoinableQueue,LifoQueue,PriorityQueue,Channel}:
//!   raises_timeout_number: gevent::q08_zero_timeouts_all_kinds + P49;
//!   outer_timeout and raises_timeout_Timeout: ported,
//!   get_interrupt_test_raises_timeout_timeout_all_kinds (P49 lacks the
//!   Lifo/Priority/Joinable gets and puts); _exc_customized: N/A as above.
//!
//! test__pool.py
//! - TestCoroutinePool: test_apply_async, test_apply: ported in
//!   pool_test_map_imap_all_sizes (apply); test_apply_raises:
//!   gevent::p05_map_with_panic; test_multiple_coros: gevent2::pp07_multiple_coros_order;
//!   test_reentrant: probes19::a_size_one_pool_whose_member_waits_on_its_own_pool_is_a_would_block_forever
//!   (documented in Pool::spawn: gevent's `apply` from a member runs inline,
//!   sylvan has no `apply` and a member's spawn into its full pool waits);
//!   test_stderr_raising: N/A (sys.stderr replaced).
//! - PoolBasicTests: test_execute_async: gevent2::pp08_execute_async_free_count;
//!   test_discard, test_add_method_non_blocking, test_add_method_timeout,
//!   test_start_method_timeout: N/A (no discard/add/start; a timed spawn on
//!   a full pool: gevent2::pp17_timeout_in_spawn_on_a_full_pool); test_add_method:
//!   gevent2::pp17_timeout_in_spawn_on_a_full_pool; test_apply: ported
//!   (pool_test_map_imap_all_sizes); test_init_error: gevent::p01_pool_zero_panics.
//! - TestPool, TestPool2, TestPool3, TestPool10, TestPoolUnlimit (Group):
//!   test_apply, test_map, test_imap_list_small, test_imap_it_small,
//!   test_imap_it_large, test_imap_unordered, test_empty_imap_unordered,
//!   test_empty_imap, test_empty_map: ported, pool_test_map_imap_all_sizes;
//!   test_imap_random, test_imap_unordered_random: ported,
//!   pool_test_imap_random_all_sizes; test_async, test_async_callback,
//!   test_async_timeout: ported, pool_test_async_callback_and_timeout;
//!   test_terminate: gevent2::pp09_terminate_while_map_runs;
//!   test_imap_unordered_sleep: gevent2::pp02_imap_unordered_sleep_order_by_size;
//!   test_imap_no_stop, test_imap_unordered_no_stop, test_imap_final_sleep,
//!   test_imap_unordered_final_sleep: gevent2::pp03_imap_over_blocking_iterators;
//!   test_imap_unordered_bounded_queue: N/A (no `maxsize` on imap: results
//!   are kept without bound, documented).
//! - TestPool0.test_wait_full: gevent::p01_pool_zero_panics (documented:
//!   `Pool::new(0)` panics, such a pool could never run anything).
//! - TestJoinSleep, TestJoinSleep_raise_error: returns_none / outer_timeout:
//!   P49 (Pool::join_timeout).
//! - TestJoinEmpty.test, TestSpawn.testSpawnAndWait: gevent2::pp12_join_timeout_then_join;
//!   TestSpawn.test: gevent::p02_pool_spawn_blocks_when_full.
//! - TestErrorInIterator.test, test_unordered: gevent2::pp04_map_error_in_iterator_no_slot_leak.
//! - TestErrorInHandler.test_map: probes44::pool_map_keeps_order_and_reports_a_panic_in_place
//!   (documented: map gives the panic in place, gevent's map raises);
//!   test_imap, test_imap_unordered: gevent2::pp01_imap_panic_in_middle_size_one.
//!
//! test__semaphore.py
//! - TestSemaphore: test_acquire_returns_false_after_timeout: P49
//!   (Semaphore::acquire_timeout on a semaphore of 0); test_release_twice:
//!   probes26::semaphore_release_twice_notifies_each_watcher;
//!   test_semaphore_weakref: N/A; test_semaphore_in_class_with_del:
//!   probes49::drop_that_acquires_its_own_semaphore;
//!   test_rawlink_on_unacquired_runs_notifiers: probes26::wait_on_free_semaphore_from_main_returns_at_once.
//! - TestSemaphoreMultiThread, TestBoundedSemaphoreMultiThread:
//!   test_acquire_in_one_then_another, _timed,
//!   test_acquire_in_one_wait_greenlet_wait_thread_gives_up,
//!   test_dueling_threads, _timeout, _with_hub: N/A (`Semaphore` is `!Sync`:
//!   two threads cannot share one; cross-thread traffic goes through
//!   `sylvan::mpsc` and `Handle`, documented under Coordination).
//! - TestCExt.test_c_extension: N/A.
//! - TestSemaphoreFair.test_fair_or_hangs: gevent2::sp01_semaphore_fair_or_hangs.
//!
//! test__lock.py
//! - TestRLockMultiThread (the six tests above, on RLock): N/A (no RLock;
//!   `Mutex` is `!Sync`).
//! - TestLockReinitAfterFork.test_it: ported, lock_test_reinit_after_fork.
//!
//! test__threadpool.py
//! - PoolBasicTests: test_execute_async: probes26::spawn_blocking_from_several_greenlets;
//!   test_apply: ported in threadpool_test_async_callback_and_timeout;
//!   test_apply_raises: probes26::spawn_blocking_panic_reaches_the_caller;
//!   test_init_valueerror: probes47::blocking_jobs_beyond_the_pool_size_run_in_submission_order
//!   (`set_blocking_threads(0)` is refused).
//! - TestPool, TestPool2, TestPool3, TestPool10 (and TestTPE.test_map):
//!   test_map, test_imap_list_small, test_imap_it_small, test_imap_it_large,
//!   test_imap_random, test_imap_unordered, test_imap_unordered_random,
//!   test_imap_unordered_sleep: ported, threadpool_test_map_imap_all_sizes
//!   (a greenlet `Pool` whose tasks call `spawn_blocking`: the thread pool
//!   has no map of its own); test_apply, test_async, test_async_callback,
//!   test_async_timeout: ported, threadpool_test_async_callback_and_timeout;
//!   test_greenlet_class, test_imap_gc, test_imap_unordered_gc: N/A (repr,
//!   gc); test_terminate: N/A (no kill of pool threads: a job runs to its
//!   end, documented; a killed waiter: probes47::kill_while_waiting_for_a_blocking_job_drops_the_result_once).
//! - TestPool2.test_recursive_apply: ported, threadpool_test_recursive_apply
//!   (inline nesting itself: probes47::spawn_blocking_nested_inline_during_unwind_and_under_timeout).
//! - TestJoinEmpty.test: N/A (no join on the thread pool).
//! - TestSpawn.test_basics: threads_gevent::sb_pool_size_knob_bounds_concurrency
//!   and probes47::blocking_jobs_beyond_the_pool_size_run_in_submission_order;
//!   test_cannot_spawn_from_other_thread: N/A (one pool per process, any
//!   thread may use it; from a pool thread a job runs inline, documented).
//! - TestErrorInIterator.test, test_unordered: gevent2::pp04_map_error_in_iterator_no_slot_leak.
//! - TestMaxsize.test_inc: threads_gevent::sb_raising_the_bound_starts_queued_jobs_now;
//!   test_setzero: N/A (a bound of 0 is refused, documented).
//! - TestSize.test: N/A (no count of started threads is exposed).
//! - TestRef.test: probes26::spawn_blocking_keeps_no_reference_to_args_or_result;
//!   TestRefCount.test: N/A (refcounts).
//! - TestTPE: test_future, test_future_wait_gevent_function: ported,
//!   threadpool_tpe_test_future (a greenlet around `spawn_blocking` is the
//!   future); test_future_wait_module_function: N/A (concurrent.futures).
//! - TestThreadResult.test_exception_in_on_async_doesnt_crash: N/A (internal
//!   ThreadResult callback).
//! - TestBeforeRunTaskFailure: test_caller_gets_exception_and_slot_is_released,
//!   test_queued_task_runs_after_all_workers_fail: ported,
//!   threadpool_test_caller_gets_exception_and_slot_is_released (the failure
//!   is the job's own panic: sylvan has no per-task setup hook);
//!   test_audit_hook_rejection_does_not_hang: N/A (Python audit hooks).
//! - TestWorkerProfileAndTrace (6 tests): N/A (Python profile/trace hooks).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::mpsc as stdmpsc;
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, Channel, Event, JoinableQueue, LifoQueue, Mutex, PriorityQueue, Queue,
    TryGetError, TryPutError,
};
use sylvan::{Timeout, Waitable, spawn, yield_now};

use crate::util::{Log, bounded, fork_child, in_child, quiet, reap};

const MS: Duration = Duration::from_millis(1);

// ------------------------------------------------------------ test__event

/// test__event.py TestWait / TestWait_notimeout / TestWait_count1 /
/// TestWait_count2 `test`: a sender sets five events and five async
/// results, one every 10 ms; `gevent.wait(events + asyncs, count, timeout)`
/// returns all ten (and the sender is done) without a count, with a
/// timeout of 1 s or none; with a count it returns that many while the
/// sender still runs.
#[test]
fn event_test_wait_variants() {
    bounded(|| {
        let period = 10 * MS;
        for (timeout, count) in [
            (Some(Duration::from_secs(1)), None),
            (None, None),
            (Some(Duration::from_secs(1)), Some(1)),
            (Some(Duration::from_secs(1)), Some(2)),
        ] {
            let evs: Vec<Rc<Event>> = (0..5).map(|_| Rc::new(Event::new())).collect();
            let ars: Vec<Rc<AsyncResult<u32>>> =
                (0..5).map(|_| Rc::new(AsyncResult::new())).collect();
            let (mut e2, mut a2) = (evs.clone(), ars.clone());
            let sender = spawn(move || {
                while !e2.is_empty() || !a2.is_empty() {
                    sylvan::sleep(period);
                    if let Some(e) = e2.pop() {
                        e.set();
                    }
                    sylvan::sleep(period);
                    if let Some(a) = a2.pop() {
                        a.set(1).unwrap();
                    }
                }
            });
            let mut objs: Vec<&dyn Waitable> = Vec::new();
            objs.extend(evs.iter().map(|e| &**e as &dyn Waitable));
            objs.extend(ars.iter().map(|a| &**a as &dyn Waitable));
            let results = sylvan::wait(&objs, timeout, count);
            match count {
                None => {
                    assert_eq!(results.len(), 10, "{timeout:?}: {results:?}");
                    assert!(sender.is_dead(), "{timeout:?}: the sender is done");
                }
                Some(n) => {
                    assert_eq!(results.len(), n, "count {n}: {results:?}");
                    assert!(!sender.is_dead(), "count {n}: the sender still runs");
                    sender.kill();
                }
            }
        }
    });
}

/// test__event.py TestAsyncResultWait and TestWaitAsyncResult
/// (AbstractGenericWaitTestCase): `AsyncResult().wait(timeout)` and
/// `gevent.wait([AsyncResult()], timeout)` return after about the timeout
/// with nothing (`test_returns_none_after_timeout`), and a `Timeout` armed
/// outside a wait of 1 s is raised from it at once
/// (`test_outer_timeout_is_not_lost`). No timer is left behind.
#[test]
fn event_test_async_result_wait_returns_after_timeout_and_outer_timeout() {
    bounded(|| {
        let ar: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
        let d = 50 * MS;
        let timers = sylvan::stats().timers;

        let t = Instant::now();
        assert!(!ar.wait_timeout(d));
        let took = t.elapsed();
        assert!(
            took >= d && took < d + Duration::from_millis(500),
            "{took:?}"
        );

        let t = Instant::now();
        assert!(sylvan::wait(&[&*ar], Some(d), None).is_empty());
        let took = t.elapsed();
        assert!(
            took >= d && took < d + Duration::from_millis(500),
            "{took:?}"
        );

        let cases: Vec<(&str, OuterCase<'_>)> = vec![
            (
                "wait_timeout",
                Box::new(|| {
                    let _ = ar.wait_timeout(Duration::from_secs(1));
                }),
            ),
            (
                "wait",
                Box::new(|| {
                    let _ = ar.wait();
                }),
            ),
            (
                "sylvan::wait",
                Box::new(|| {
                    let _ = sylvan::wait(&[&*ar], Some(Duration::from_secs(1)), None);
                }),
            ),
        ];
        for (name, f) in cases {
            let t = Instant::now();
            let r = sylvan::with_timeout(5 * MS, f);
            assert!(r.is_err(), "{name}: the outer timeout was lost");
            assert!(t.elapsed() < Duration::from_millis(500), "{name}: late");
        }
        assert_eq!(sylvan::stats().timers, timers, "a timer left behind");
        assert_eq!(ar.waiters(), 0);
    });
}

/// One wait run under an outer timeout.
type OuterCase<'a> = Box<dyn Fn() + 'a>;

/// Checks one blocking call against a `Timeout` guard: the call is cut by
/// that very timeout (its payload is the guard's own), not before it.
fn cut_by_own_timeout(name: &str, d: Duration, f: impl FnOnce()) {
    let t0 = Instant::now();
    let timeout = Timeout::start(d);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => panic!("{name}: returned instead of being cut by the timeout"),
        Err(p) => assert!(
            timeout.is_own_payload(&*p),
            "{name}: cut by something else than its Timeout"
        ),
    }
    let took = t0.elapsed();
    assert!(
        took >= d && took < d + Duration::from_millis(700),
        "{name}: took {took:?} for {d:?}"
    );
}

/// test__event.py TestAsyncResultGet and test__queue.py TestGetInterrupt*
/// / TestPutInterrupt* (every queue kind), `test_raises_timeout_Timeout`:
/// a get (or a put on a full queue) run under a `Timeout` raises that same
/// timeout (`assertIs(ex, timeout)`), after about its delay; and
/// `test_outer_timeout_is_not_lost`: a `Timeout` of 20 ms armed around a
/// get or put whose own timeout is 1 s is raised from it. The queues are
/// left as they were: no waiter behind, the full ones still full.
#[test]
fn get_interrupt_test_raises_timeout_timeout_all_kinds() {
    bounded(|| {
        let d = 20 * MS;
        let long = Duration::from_secs(1);
        let ar: AsyncResult<u32> = AsyncResult::new();
        cut_by_own_timeout("AsyncResult::get", d, || {
            let _ = ar.get();
        });
        cut_by_own_timeout("AsyncResult::get_timeout", d, || {
            let _ = ar.get_timeout(long);
        });
        assert_eq!(ar.waiters(), 0);

        macro_rules! kind {
            ($name:literal, $empty:expr, $full:expr) => {{
                let q = $empty;
                cut_by_own_timeout(concat!($name, "::get"), d, || {
                    let _ = q.get();
                });
                cut_by_own_timeout(concat!($name, "::get_timeout"), d, || {
                    let _ = q.get_timeout(long);
                });
                assert_eq!(q.getters(), 0, $name);
                let f = $full;
                cut_by_own_timeout(concat!($name, "::put"), d, || {
                    let _ = f.put(2);
                });
                cut_by_own_timeout(concat!($name, "::put_timeout"), d, || {
                    let _ = f.put_timeout(3, long);
                });
                assert_eq!(f.putters(), 0, $name);
                assert!(f.is_full(), $name);
            }};
        }
        let full = |q: Queue<u32>| {
            q.put(1).unwrap();
            q
        };
        kind!("Queue", Queue::<u32>::unbounded(), full(Queue::bounded(1)));
        let jfull = JoinableQueue::bounded(1);
        jfull.put(1u32).unwrap();
        kind!("JoinableQueue", JoinableQueue::<u32>::unbounded(), jfull);
        let lfull = LifoQueue::bounded(1);
        lfull.put(1u32).unwrap();
        kind!("LifoQueue", LifoQueue::<u32>::unbounded(), lfull);
        let pfull = PriorityQueue::bounded(1);
        pfull.put(1u32).unwrap();
        kind!("PriorityQueue", PriorityQueue::<u32>::unbounded(), pfull);
        kind!("Channel", Channel::<u32>::new(), Channel::<u32>::new());
    });
}

/// test__event.py TestAsyncResultCrossThread / TestEventCrossThread
/// `test_cross_thread_use`, `_bg`, `_timed`, `_timed_bg` (issue 1739): a
/// second thread, with a greenlet spinning on timed event waits, waits on
/// an `AsyncResult` (or `Event`) in its main greenlet or in a greenlet of
/// its own, with or without a timeout (60 s); the main thread sets it once
/// the other is waiting. The wait must not hang and sees the value. In
/// sylvan the primitives are `!Sync`: the set goes to the waiting thread's
/// hub as a `Handle::spawn` job, as documented. The spinner's waits are
/// long (1 s), so it is the set that wakes the hub, not a timer.
#[test]
fn event_test_cross_thread_use() {
    thread_local! {
        static AR: RefCell<Option<Rc<AsyncResult<&'static str>>>> = const { RefCell::new(None) };
        static EV: RefCell<Option<Rc<Event>>> = const { RefCell::new(None) };
    }
    for use_event in [false, true] {
        for wait_in_bg in [false, true] {
            for timed in [false, true] {
                let what = format!("event {use_event}, in bg {wait_in_bg}, timed {timed}");
                let (running_tx, running_rx) = stdmpsc::channel::<sylvan::Handle>();
                let (done_tx, done_rx) = stdmpsc::channel::<String>();
                let th = std::thread::spawn(move || {
                    let ar = Rc::new(AsyncResult::new());
                    let ev = Rc::new(Event::new());
                    AR.with(|a| *a.borrow_mut() = Some(ar.clone()));
                    EV.with(|e| *e.borrow_mut() = Some(ev.clone()));
                    let g_event = Rc::new(Event::new());
                    let ge = g_event.clone();
                    let spin = spawn(move || {
                        while !ge.is_set() {
                            ge.wait_timeout(Duration::from_secs(1));
                        }
                    });
                    let handle = sylvan::Handle::current();
                    let work = move || -> String {
                        running_tx.send(handle).unwrap();
                        let ok = match (use_event, timed) {
                            (true, false) => ev.wait(),
                            (true, true) => ev.wait_timeout(Duration::from_secs(60)),
                            (false, false) => ar.wait(),
                            (false, true) => ar.wait_timeout(Duration::from_secs(60)),
                        };
                        if use_event {
                            format!("{ok}")
                        } else {
                            format!("{ok} {:?}", ar.peek())
                        }
                    };
                    let result = if wait_in_bg {
                        spawn(work).join().unwrap()
                    } else {
                        work()
                    };
                    g_event.set();
                    spin.join().unwrap();
                    let _ = done_tx.send(result);
                });
                let handle = running_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_else(|_| panic!("{what}: the thread never ran"));
                let t0 = Instant::now();
                handle
                    .spawn(move || {
                        if use_event {
                            EV.with(|e| e.borrow().as_ref().unwrap().set());
                        } else {
                            AR.with(|a| a.borrow().as_ref().unwrap().set("from main").unwrap());
                        }
                    })
                    .unwrap();
                let result = done_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_else(|_| panic!("{what}: the wait hung"));
                assert!(
                    t0.elapsed() < Duration::from_millis(900),
                    "{what}: woken only by the spinner's timer ({:?})",
                    t0.elapsed()
                );
                th.join().unwrap();
                let want = if use_event {
                    "true"
                } else {
                    "true Some(Ok(\"from main\"))"
                };
                assert_eq!(result, want, "{what}");
            }
        }
    }
}

// ------------------------------------------------------------ test__queue

/// test__queue.py UsesOnlyOneItemMixin `test_put_nowait_simple` (run for
/// SimpleQueue, Queue and Channel): on a queue of one, a first `put_nowait`
/// goes in and a second is `Full`; on a Channel (no getter waiting) both
/// are `Full`.
#[test]
fn queue_test_put_nowait_simple() {
    bounded(|| {
        let q = Queue::bounded(1);
        assert_eq!(q.try_put(2), Ok(()));
        assert!(matches!(q.try_put(3), Err(TryPutError::Full(3))));
        let j = JoinableQueue::bounded(1);
        assert_eq!(j.try_put(2), Ok(()));
        assert!(matches!(j.try_put(3), Err(TryPutError::Full(3))));
        let c = Channel::new();
        assert!(matches!(c.try_put(2), Err(TryPutError::Full(2))));
        assert!(matches!(c.try_put(3), Err(TryPutError::Full(3))));
        assert_eq!(c.try_get(), Err(TryGetError::Empty), "nothing left behind");
    });
}

/// test__queue.py TestChannel `test_put_nowait_unlock`: with a getter
/// parked on a Channel, `put_nowait` goes through, the getter is not done
/// until it runs, then has the item; the channel stays empty. gevent's
/// `Channel.full()` is always true; sylvan documents (`is_full`) that a
/// Channel is not full while a getter waits for an item, so that part
/// asserts sylvan's documented answer.
#[test]
fn channel_test_put_nowait_unlock() {
    bounded(|| {
        let q: Rc<Channel<u32>> = Rc::new(Channel::new());
        let q2 = q.clone();
        let p = spawn(move || q2.get());
        assert!(q.is_empty());
        assert!(q.is_full(), "no getter waits yet");
        sylvan::sleep(MS);
        assert!(q.is_empty());
        assert_eq!(q.getters(), 1);
        // documented difference: gevent's Channel is always full
        assert!(!q.is_full(), "a getter waits: a try_put would go through");
        assert_eq!(q.try_put(10), Ok(()));
        assert!(!p.is_dead());
        sylvan::sleep(MS);
        assert!(p.is_dead());
        assert!(q.is_full());
        assert!(q.is_empty());
        assert_eq!(p.join().unwrap(), Some(10));
    });
}

/// test__queue.py TestSimpleQueue / TestQueue `test_get_nowait_simple`,
/// `test_get_nowait_unlock` and `test_senders_that_die`: a queue of one
/// holding 4 gives it to the first `get_nowait`, the second is `Empty`; a
/// putter spawned on an empty queue of one fills it and is done, and
/// `get_nowait` then empties it; an item put by a greenlet that has ended
/// is got.
#[test]
fn queue_test_get_nowait_simple_unlock_and_senders_that_die() {
    bounded(|| {
        macro_rules! check {
            ($q:expr) => {{
                let q = Rc::new($q);
                q.put(4).unwrap();
                assert_eq!(q.try_get(), Ok(4));
                assert_eq!(q.try_get(), Err(TryGetError::Empty));

                let q2 = q.clone();
                let p = spawn(move || q2.put(5));
                assert!(q.is_empty());
                yield_now();
                assert!(q.is_full());
                assert_eq!(q.try_get(), Ok(5));
                yield_now();
                assert!(q.is_empty());
                assert!(p.is_dead());
                p.join().unwrap().unwrap();

                let q2 = q.clone();
                let s = spawn(move || q2.put(6));
                assert_eq!(q.get(), Some(6));
                s.join().unwrap().unwrap();
            }};
        }
        check!(Queue::bounded(1));
        check!(JoinableQueue::bounded(1));
    });
}

/// test__queue.py TestChannel `test_iterable`: a greenlet ends the
/// channel's iteration before anything is put (gevent puts
/// `StopIteration`; sylvan's iteration ends at `close`), so
/// `list(channel)` is empty.
#[test]
fn channel_test_iterable() {
    bounded(|| {
        let ch: Rc<Channel<u32>> = Rc::new(Channel::new());
        let c = ch.clone();
        spawn(move || c.close());
        let r: Vec<u32> = ch.iter().collect();
        assert!(r.is_empty());
    });
}

/// test__queue.py TestQueue `test_shutdown_all_methods_in_one_thread`
/// (`shutdown(immediate=False)`, sylvan's `close`): after "L" and "O" are
/// put and the queue shut down, `put` and `put_nowait` fail with the item;
/// both items are still got, `task_done` for each lets `join` return; then
/// `get`, `get_nowait` and `get(timeout=1)` all fail at once as shut down.
#[test]
fn queue_test_shutdown_all_methods_in_one_thread() {
    bounded(|| {
        let q = JoinableQueue::unbounded();
        q.put("L").unwrap();
        q.try_put("O").unwrap();
        q.close();
        assert_eq!(q.put("E").unwrap_err().0, "E");
        assert!(matches!(q.try_put("W"), Err(TryPutError::Closed("W"))));
        let a = q.get().unwrap();
        assert!("LO".contains(a));
        q.task_done();
        let b = q.get().unwrap();
        assert!("LO".contains(b) && a != b);
        q.task_done();
        q.join();
        assert_eq!(q.get(), None);
        assert_eq!(q.try_get(), Err(TryGetError::Closed));
        let t = Instant::now();
        assert_eq!(
            q.get_timeout(Duration::from_secs(1)),
            Err(TryGetError::Closed)
        );
        assert!(t.elapsed() < Duration::from_millis(500));
    });
}

// ------------------------------------------------------------ test__pool

fn sqr(x: u64) -> u64 {
    yield_now(); // gevent.sleep(0)
    x * x
}

/// test__pool.py TestPool, TestPool2, TestPool3, TestPool10 and
/// TestPoolUnlimit (sizes 1, 2, 3, 10 and none: a `Group`): `test_apply`
/// (`apply(sqr, (5,))` is 25), `test_map` (0..10 and 0..100 in order),
/// `test_imap_list_small`, `test_imap_it_small` (then `StopIteration`),
/// `test_imap_it_large` (1000), `test_imap_unordered` (1000, twice, sorted),
/// `test_empty_imap_unordered`, `test_empty_imap`, `test_empty_map`.
/// Also TestCoroutinePool / PoolBasicTests `test_apply` and
/// `test_apply_async`.
#[test]
fn pool_test_map_imap_all_sizes() {
    bounded(|| {
        let squares = |n: u64| (0..n).map(|x| x * x).collect::<Vec<_>>();
        let ok = |v: Vec<Result<u64, sylvan::Error>>| -> Vec<u64> {
            v.into_iter().map(|r| r.unwrap()).collect()
        };
        macro_rules! check {
            ($p:expr, $what:expr) => {{
                let p = $p;
                let what = $what;
                assert_eq!(p.spawn(|| sqr(5)).join().unwrap(), 25, "{what}");
                let done = Rc::new(Event::new());
                let d = done.clone();
                p.spawn(move || d.set());
                done.wait();
                assert_eq!(ok(p.map(0..10, sqr)), squares(10), "{what}");
                assert_eq!(ok(p.map(0..100, sqr)), squares(100), "{what}");
                let got: Vec<u64> = p.imap(0..10, sqr).map(|r| r.unwrap()).collect();
                assert_eq!(got, squares(10), "{what}");
                let mut it = p.imap(0..10, sqr);
                for i in 0..10 {
                    assert_eq!(it.next().map(|r| r.unwrap()), Some(i * i), "{what}");
                }
                assert!(it.next().is_none(), "{what}");
                drop(it);
                let mut it = p.imap(0..1000, sqr);
                for i in 0..1000 {
                    assert_eq!(it.next().map(|r| r.unwrap()), Some(i * i), "{what}");
                }
                assert!(it.next().is_none(), "{what}");
                drop(it);
                for _ in 0..2 {
                    let mut got: Vec<u64> =
                        p.imap_unordered(0..1000, sqr).map(|r| r.unwrap()).collect();
                    got.sort_unstable();
                    assert_eq!(got, squares(1000), "{what}");
                }
                assert_eq!(p.imap_unordered(0..0, sqr).count(), 0, "{what}");
                assert_eq!(p.imap(0..0, sqr).count(), 0, "{what}");
                assert!(p.map(0..0, sqr).is_empty(), "{what}");
                p.join();
                assert!(p.is_empty(), "{what}");
            }};
        }
        for size in [1, 2, 3, 10] {
            check!(Pool::new(size), format!("Pool({size})"));
        }
        check!(Group::new(), "Group");
    });
}

/// A pseudo-random delay of 0..30 ms for item `x` (gevent sleeps
/// `random() * 0.1`; fixed here so that runs are repeatable).
fn random_delay(x: u64) -> Duration {
    Duration::from_millis(x.wrapping_mul(2_654_435_761) % 31)
}

/// test__pool.py TestPool* `test_imap_random` and
/// `test_imap_unordered_random`: tasks that sleep a random time; imap
/// yields the squares in input order, imap_unordered all of them.
#[test]
fn pool_test_imap_random_all_sizes() {
    bounded(|| {
        let f = |x: u64| {
            sylvan::sleep(random_delay(x));
            x * x
        };
        let squares: Vec<u64> = (0..10).map(|x| x * x).collect();
        macro_rules! check {
            ($p:expr) => {{
                let p = $p;
                let got: Vec<u64> = p.imap(0..10, f).map(|r| r.unwrap()).collect();
                assert_eq!(got, squares);
                let mut got: Vec<u64> = p.imap_unordered(0..10, f).map(|r| r.unwrap()).collect();
                got.sort_unstable();
                assert_eq!(got, squares);
            }};
        }
        for size in [1, 2, 3, 10] {
            check!(Pool::new(size));
        }
        check!(Group::new());
    });
}

/// test__pool.py TestPool `test_async` (`apply_async(sqr, (7, 0.082))`:
/// its `get` gives 49 after about 82 ms), `test_async_callback` (the
/// callback gets 49 once the loop has turned) and `test_async_timeout`
/// (`get(timeout=0.035)` on a task sleeping 0.235 s raises `Timeout` after
/// about 35 ms; the pool is then joined). Margins are wide.
#[test]
fn pool_test_async_callback_and_timeout() {
    bounded(|| {
        let t1 = Duration::from_millis(82);
        let t2 = Duration::from_millis(35);
        let pool = Pool::new(1);

        let t = Instant::now();
        let res = pool.spawn(move || {
            sylvan::sleep(t1);
            7u64 * 7
        });
        assert_eq!(res.join().unwrap(), 49);
        let took = t.elapsed();
        assert!(
            took >= t1 && took < t1 + Duration::from_millis(400),
            "{took:?}"
        );

        let log = Log::default();
        let l = log.clone();
        let t = Instant::now();
        let res = pool.spawn(move || {
            sylvan::sleep(t1);
            7u64 * 7
        });
        res.link_value(move |v| l.push(v.to_string()));
        assert_eq!(res.join().unwrap(), 49);
        assert!(t.elapsed() >= t1);
        yield_now();
        assert_eq!(log.take(), ["49"]);

        let t = Instant::now();
        let res = pool.spawn(move || {
            sylvan::sleep(t2 + Duration::from_millis(200));
            6u64 * 6
        });
        assert!(!res.wait(Some(t2)), "the get timed out");
        let took = t.elapsed();
        assert!(
            took >= t2 && took < t2 + Duration::from_millis(500),
            "{took:?}"
        );
        pool.join();
        assert_eq!(res.join().unwrap(), 36);
    });
}

// ------------------------------------------------------------ test__lock

/// test__lock.py TestLockReinitAfterFork `test_it` (issue 1895): a lock
/// held by main, a greenlet waiting for it; main releases it, the greenlet
/// takes and releases it, and forks while the lock is being handed on
/// (here to a third greenlet, woken but not yet run). Nothing may be
/// printed and nothing may fail, in the child or the parent: in the child
/// the woken greenlet gets the lock and it is free afterwards; the parent
/// goes on likewise.
#[test]
fn lock_test_reinit_after_fork() {
    in_child(
        "probes62::lock_test_reinit_after_fork",
        "p62-lock-fork",
        || {
            let m = Rc::new(Mutex::new(0u32));
            let guard = m.lock();
            let third_done = Rc::new(Cell::new(false));
            let (m2, td) = (m.clone(), third_done.clone());
            let forker = spawn(move || {
                drop(m2.lock());
                // the lock went on to `third`, which has not run yet
                assert!(m2.is_locked());
                fork_child(move || {
                    let ok = sylvan::with_timeout(Duration::from_secs(3), || {
                        while !td.get() {
                            sylvan::sleep(MS);
                        }
                        m2.try_lock().map(|g| *g)
                    });
                    if ok == Ok(Some(1)) { 0 } else { 1 }
                })
            });
            let (m3, td) = (m.clone(), third_done.clone());
            let third = spawn(move || {
                *m3.lock() += 1;
                td.set(true);
            });
            yield_now(); // both park on the lock, forker first
            assert_eq!(m.waiters(), 2);
            drop(guard);
            let pid = forker.join().unwrap();
            third.join().unwrap();
            assert!(third_done.get());
            assert_eq!(*m.try_lock().unwrap(), 1);
            assert_eq!(reap(pid, Duration::from_secs(5)), 0, "the child failed");
        },
    );
}

// ------------------------------------------------------------ test__threadpool

/// test__threadpool.py TestPool `test_apply` (`apply(sqr, (5,))`),
/// `test_async` (a job sleeping 82 ms: its result after about that),
/// `test_async_callback` (the callback gets 49 once the loop turns) and
/// `test_async_timeout` (`get(timeout=0.035)` on a job of 0.235 s raises
/// after about 35 ms, well before the job ends). The job is the closure
/// given to `spawn_blocking`; its "AsyncResult" is a greenlet around it.
#[test]
fn threadpool_test_async_callback_and_timeout() {
    bounded(|| {
        let t1 = Duration::from_millis(82);
        let t2 = Duration::from_millis(35);
        assert_eq!(sylvan::spawn_blocking(|| ("foo", 5 * 5)), ("foo", 25));

        let t = Instant::now();
        let res = spawn(move || {
            sylvan::spawn_blocking(move || {
                std::thread::sleep(t1);
                7u64 * 7
            })
        });
        assert_eq!(res.join().unwrap(), 49);
        let took = t.elapsed();
        assert!(
            took >= t1 && took < t1 + Duration::from_millis(500),
            "{took:?}"
        );

        let log = Log::default();
        let l = log.clone();
        let res = spawn(move || {
            sylvan::spawn_blocking(move || {
                std::thread::sleep(t1);
                7u64 * 7
            })
        });
        res.link_value(move |v| l.push(v.to_string()));
        assert_eq!(res.join().unwrap(), 49);
        yield_now();
        assert_eq!(log.take(), ["49"]);

        let t = Instant::now();
        let res = spawn(move || {
            sylvan::spawn_blocking(move || {
                std::thread::sleep(t2 + Duration::from_millis(200));
                6u64 * 6
            })
        });
        assert!(!res.wait(Some(t2)), "the get timed out");
        let took = t.elapsed();
        assert!(
            took >= t2 && took < t2 + Duration::from_millis(500),
            "{took:?}"
        );
        assert_eq!(res.join().unwrap(), 36);
    });
}

/// test__threadpool.py TestPool, TestPool2, TestPool3, TestPool10:
/// `test_map` (0..10 and 0..100), `test_imap_list_small`,
/// `test_imap_it_small`, `test_imap_it_large`, `test_imap_random` and
/// `test_imap_unordered_random` (jobs sleeping a random time in their
/// thread), `test_imap_unordered` and `test_imap_unordered_sleep` (jobs of
/// 100, 10 and 20 ms: with one worker in input order, with more in
/// completion order). Workers are a greenlet `Pool` of that size, each
/// task running its job with `spawn_blocking`.
#[test]
fn threadpool_test_map_imap_all_sizes() {
    bounded(|| {
        let sqr = |x: u64| sylvan::spawn_blocking(move || x * x);
        let sqr_random = |x: u64| {
            sylvan::spawn_blocking(move || {
                std::thread::sleep(random_delay(x) / 3);
                x * x
            })
        };
        let squares = |n: u64| (0..n).map(|x| x * x).collect::<Vec<_>>();
        let ok = |v: Vec<Result<u64, sylvan::Error>>| -> Vec<u64> {
            v.into_iter().map(|r| r.unwrap()).collect()
        };
        for size in [1, 2, 3, 10] {
            let p = Pool::new(size);
            assert_eq!(ok(p.map(0..10, sqr)), squares(10), "{size}");
            assert_eq!(ok(p.map(0..100, sqr)), squares(100), "{size}");
            let got: Vec<u64> = p.imap(0..10, sqr).map(|r| r.unwrap()).collect();
            assert_eq!(got, squares(10), "{size}");
            let mut it = p.imap(0..200, sqr);
            for i in 0..200 {
                assert_eq!(it.next().map(|r| r.unwrap()), Some(i * i), "{size}");
            }
            assert!(it.next().is_none());
            drop(it);
            let got: Vec<u64> = p.imap(0..10, sqr_random).map(|r| r.unwrap()).collect();
            assert_eq!(got, squares(10), "{size}");
            let mut got: Vec<u64> = p
                .imap_unordered(0..10, sqr_random)
                .map(|r| r.unwrap())
                .collect();
            got.sort_unstable();
            assert_eq!(got, squares(10), "{size}");
            let mut got: Vec<u64> = p.imap_unordered(0..200, sqr).map(|r| r.unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, squares(200), "{size}");

            let sleep = |x: u64| {
                sylvan::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(x * 10));
                    x.to_string()
                })
            };
            let got: Vec<String> = p
                .imap_unordered([10, 1, 2], sleep)
                .map(|r| r.unwrap())
                .collect();
            let want = if size == 1 {
                ["10", "1", "2"]
            } else {
                ["1", "2", "10"]
            };
            assert_eq!(got, want, "size {size}");
        }
    });
}

/// test__threadpool.py TestPool2 `test_recursive_apply`: a job that applies
/// another job to the pool, which uses both kinds of hub callbacks
/// (`gevent.sleep()` and `gevent.sleep(0.001)`) on the worker thread, and
/// returns "B". In sylvan the nested job runs inline on the pool thread
/// (documented), where sylvan's `yield_now` and `sleep` work on that
/// thread's own hub.
#[test]
fn threadpool_test_recursive_apply() {
    bounded(|| {
        let r = sylvan::spawn_blocking(|| {
            sylvan::spawn_blocking(|| {
                sylvan::yield_now();
                sylvan::sleep(MS);
                "B"
            })
        });
        assert_eq!(r, "B");
    });
}

/// test__threadpool.py TestTPE `test_future` and
/// `test_future_wait_gevent_function`: a job of 200 ms (gevent: 0.5 s)
/// submitted; `result(timeout=0.001)` times out; a greenlet spawned
/// meanwhile runs while the caller waits; the result is 42; the done
/// callback (which raises, ignored) ran once; `gevent.wait((future,))`
/// returns it; a callback added once it is done runs too (gevent runs it
/// at once; sylvan's links run in a fresh greenlet, documented, so after a
/// yield), and the first callback is not run again.
#[test]
fn threadpool_tpe_test_future() {
    bounded(|| {
        quiet();
        let future = Rc::new(spawn(|| {
            sylvan::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(200));
                42
            })
        }));
        let called = Rc::new(Cell::new(0));
        let c = called.clone();
        future.link(move |_| {
            c.set(c.get() + 1);
            panic!("Expected, ignored");
        });
        assert!(!future.wait(Some(MS)), "result(timeout=0.001) times out");
        let spawned = spawn(|| 2016);
        assert_eq!(sylvan::wait(&[&*future], None, None), [0]);
        assert!(future.is_dead());
        yield_now();
        assert_eq!(called.get(), 1);
        assert!(spawned.is_dead());
        assert_eq!(spawned.join().unwrap(), 2016);

        let again = Rc::new(Cell::new(false));
        let a = again.clone();
        future.link_value(move |v| a.set(*v == 42));
        yield_now();
        assert!(again.get(), "a callback added once done runs");
        assert_eq!(sylvan::wait(&[&*future], None, None), [0]);
        yield_now();
        assert_eq!(called.get(), 1, "the first callback ran once");
        let future = Rc::try_unwrap(future).ok().unwrap();
        assert_eq!(future.join().unwrap(), 42);
    });
}

/// test__threadpool.py TestBeforeRunTaskFailure
/// `test_caller_gets_exception_and_slot_is_released` and
/// `test_queued_task_runs_after_all_workers_fail` (issue 2207): one more
/// failing task than the pool has threads, applied one after another and
/// then all queued at once: every caller gets the failure, and the pool
/// still runs a task afterwards (no thread or slot was lost). sylvan has
/// no setup hook to fail; the failure is the job's panic.
#[test]
fn threadpool_test_caller_gets_exception_and_slot_is_released() {
    bounded(|| {
        quiet();
        let n = sylvan::blocking_threads() + 1;
        let fails = || {
            catch_unwind(|| sylvan::spawn_blocking(|| -> u32 { panic!("ExpectedException") }))
                .err()
                .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()))
        };
        for _ in 0..n {
            assert_eq!(fails().as_deref(), Some("ExpectedException"));
        }
        assert_eq!(sylvan::spawn_blocking(|| 1701), 1701);
        let gs: Vec<_> = (0..n).map(|_| spawn(fails)).collect();
        for g in gs {
            assert_eq!(g.join().unwrap().as_deref(), Some("ExpectedException"));
        }
        assert_eq!(sylvan::spawn_blocking(|| 1701), 1701);
    });
}
