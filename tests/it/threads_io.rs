//! Cross-thread work: the blocking pool, handles, the `Send` channel, and
//! signals.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use sylvan::mpsc;

#[test]
fn spawn_blocking_keeps_the_hub_responsive() {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let ticker = sylvan::spawn(move || {
        let mut ticks = 0u32;
        let mut max_gap = Duration::ZERO;
        let mut last = Instant::now();
        while !s.get() {
            sylvan::sleep(Duration::from_millis(1));
            let now = Instant::now();
            max_gap = max_gap.max(now - last);
            last = now;
            ticks += 1;
        }
        (ticks, max_gap)
    });
    let t = Instant::now();
    let workers: Vec<_> = (0..20)
        .map(|i| {
            sylvan::spawn(move || {
                let mut sum = 0;
                for j in 0..5 {
                    sum += sylvan::spawn_blocking(move || {
                        std::thread::sleep(Duration::from_millis(4));
                        i * j
                    });
                }
                sum
            })
        })
        .collect();
    let total: i32 = workers.into_iter().map(|g| g.join().unwrap()).sum();
    let elapsed = t.elapsed();
    stop.set(true);
    let (ticks, max_gap) = ticker.join().unwrap();
    assert_eq!(total, (0..20).sum::<i32>() * (0..5).sum::<i32>());
    // 100 jobs of 4 ms on at most 16 threads took at least 25 ms, and the
    // ticker ran all along (generous bounds: CI machines are noisy).
    assert!(elapsed >= Duration::from_millis(24), "{elapsed:?}");
    assert!(
        ticks >= 5,
        "the ticker ticked only {ticks} times in {elapsed:?}"
    );
    assert!(
        max_gap < Duration::from_millis(200),
        "ticker stalled {max_gap:?}"
    );
}

#[test]
fn a_panic_in_spawn_blocking_reaches_the_caller() {
    let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u32 { panic!("boom in the pool") }));
    let err = g.join().unwrap_err();
    let p = err.panic().expect("a panic");
    assert!(p.message().contains("boom in the pool"), "{}", p.message());
}

#[test]
fn a_caller_killed_in_spawn_blocking_unwinds_at_once() {
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let d = dropped.clone();
    let (st_tx, st_rx) = std::sync::mpsc::channel::<()>();
    let g = sylvan::spawn(move || {
        sylvan::spawn_blocking(move || {
            st_tx.send(()).unwrap();
            // runs until the test lets it go
            let _ = rx.recv();
            Counted(d)
        })
    });
    sylvan::yield_now();
    // Started: a job not started when its caller is killed is not run.
    st_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let t = Instant::now();
    g.kill();
    assert!(g.join().unwrap_err().is_killed());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the job is still running"
    );
    tx.send(()).unwrap();
    // The job finishes on its thread and its result is dropped there.
    for _ in 0..5_000 {
        if dropped.load(Ordering::SeqCst) == 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the job's result was never dropped");
}

#[test]
fn handle_spawn_and_the_send_channel_from_another_thread() {
    let handle = sylvan::Handle::current();
    let (tx, rx) = mpsc::channel::<u32>();
    let (done_tx, done_rx) = mpsc::oneshot::<&'static str>();
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        handle
            .spawn(move || {
                // runs on the hub: greenlet code may block
                sylvan::sleep(Duration::from_millis(1));
                done_tx.send("spawned on the hub").unwrap();
            })
            .unwrap();
        // tx dropped here: the receiver's iteration ends
    });
    let got: Vec<u32> = rx.iter().collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(done_rx.recv(), Ok("spawned on the hub"));
    t.join().unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn channel_receive_timeouts_and_wakes() {
    let (tx, rx) = mpsc::channel::<u8>();
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(20));
    // a receiver parked in a greenlet, a sender on a thread
    let r = sylvan::spawn(move || rx.recv());
    sylvan::yield_now();
    let tx2 = tx.clone();
    std::thread::spawn(move || tx2.send(9).unwrap())
        .join()
        .unwrap();
    assert_eq!(r.join().unwrap(), Ok(9));
    // a killed receiver leaves no waiter: the next one still gets woken
    let (tx, rx) = mpsc::channel::<u8>();
    let rx = Rc::new(rx);
    let rx2 = rx.clone();
    let first = sylvan::spawn(move || rx2.recv());
    sylvan::yield_now();
    first.kill();
    let rx3 = rx.clone();
    let second = sylvan::spawn(move || rx3.recv());
    sylvan::yield_now();
    std::thread::spawn(move || tx.send(3).unwrap())
        .join()
        .unwrap();
    assert_eq!(second.join().unwrap(), Ok(3));
    // send fails once the receiver is gone
    let (tx, rx) = mpsc::channel::<u8>();
    drop(rx);
    assert_eq!(tx.send(1).unwrap_err().0, 1);
}

#[test]
fn main_parked_on_a_channel_waits_for_a_thread() {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send("late").unwrap();
    });
    // no greenlet, no timer: only the other thread can wake main
    assert_eq!(rx.recv(), Ok("late"));
    t.join().unwrap();
}

#[test]
fn a_signal_runs_its_handler_greenlet() {
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    let handler = sylvan::signal(libc::SIGUSR2, move || {
        // handler greenlets may block
        sylvan::sleep(Duration::from_millis(1));
        g.set(g.get() + 1);
    })
    .unwrap();
    assert_eq!(handler.signum(), libc::SIGUSR2);
    // SAFETY: sends SIGUSR2 to this process, which handles it now.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) }, 0);
    for _ in 0..5_000 {
        if got.get() > 0 {
            break;
        }
        sylvan::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.get(), 1);
    drop(handler);
    let err = sylvan::signal(libc::SIGKILL, || ()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_late_channel_wake_does_not_cut_a_later_sleep_short() {
    let (tx, rx) = mpsc::channel::<u8>();
    let g = sylvan::spawn(move || {
        let first = rx.recv_timeout(Duration::from_millis(1));
        let t = Instant::now();
        sylvan::sleep(Duration::from_millis(50));
        (first, t.elapsed())
    });
    sylvan::yield_now(); // g parks in recv_timeout
    std::thread::sleep(Duration::from_millis(5)); // its timeout passes
    // Yield until the hub has fired g's timer: g is ready, not yet run.
    let id = g.id();
    let ready = || {
        sylvan::dump()
            .greenlets
            .iter()
            .any(|i| i.id == id && i.state == "scheduled")
    };
    for _ in 0..1_000 {
        if ready() {
            break;
        }
        sylvan::yield_now();
    }
    assert!(ready(), "g's receive timed out and waits to run");
    // A send from another thread queues a wake-up for g's receive.
    std::thread::spawn(move || tx.send(1).unwrap())
        .join()
        .unwrap();
    let (first, slept) = g.join().unwrap();
    assert!(first.is_ok() || first == Err(RecvTimeoutError::Timeout));
    assert!(slept >= Duration::from_millis(50), "woken early: {slept:?}");
}

#[test]
fn thread_exit_with_a_greenlet_parked_on_a_socket() {
    std::thread::spawn(|| {
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = sylvan::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let reader = sylvan::spawn(move || {
            use std::io::Read;
            let _keep = l;
            (&c).read(&mut [0u8; 8])
        });
        sylvan::yield_now();
        assert!(!reader.is_dead());
        // the thread ends with the reader parked: teardown kills it
    })
    .join()
    .unwrap(); // no abort, no panic: the reader was unwound at thread exit
}
