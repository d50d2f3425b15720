//! The signatures sketched in DESIGN.md ("The public API (names users will
//! write)"), written the way the sketch writes them: a test suite written
//! from that page must compile against sylvan. Each call is also checked
//! for the behaviour the sketch's comment gives it.

use std::rc::Rc;
use std::time::Duration;

use sylvan::net::{StreamServer, TcpListener, TcpStream};
use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AlreadySet, AsyncResult, BoundedSemaphore, Channel, Event, JoinableQueue, LifoQueue, Mutex,
    PriorityQueue, Queue, Semaphore, TryGetError, TryPutError,
};
use sylvan::{
    Builder, Elapsed, Error, Greenlet, GreenletId, Handle, Outcome, Survivors, Timeout, Waitable,
};

use crate::util::bounded;

const MS: Duration = Duration::from_millis(1);

#[test]
fn lifecycle_as_sketched() {
    bounded(|| {
        let g: Greenlet<u8> = sylvan::spawn(|| 1);
        let later: Greenlet<u8> = sylvan::spawn_later(MS, || 2);
        let built: std::io::Result<Greenlet<u8>> = Builder::new()
            .name("fetch")
            .stack_size(256 << 10)
            .spawn(|| 3);
        let built = built.unwrap();
        assert_eq!(built.name(), Some("fetch"));
        let id: GreenletId = g.id();
        assert_ne!(id, sylvan::current());
        assert!(!g.is_started() && !g.is_dead());
        assert!(g.wait(None));
        assert!(g.is_dead());
        let r: Result<u8, Error> = g.join();
        assert_eq!(r.unwrap(), 1);
        assert_eq!(later.join().unwrap(), 2);
        assert_eq!(built.join().unwrap(), 3);

        let sleeper = || sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
        let k = sleeper();
        k.kill();
        assert!(k.join().unwrap_err().is_killed());
        let k = sleeper();
        assert!(k.kill_timeout(Duration::from_secs(1)));
        let k = sleeper();
        k.kill_nowait();
        assert!(matches!(k.join(), Err(Error::Killed)));

        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let linked = sylvan::spawn(|| 5u8);
        let s = seen.clone();
        linked.link(move |o: &Outcome<'_, u8>| {
            s.borrow_mut()
                .push(format!("link {}", matches!(o, Outcome::Returned(5))))
        });
        let s = seen.clone();
        linked.link_value(move |v: &u8| s.borrow_mut().push(format!("value {v}")));
        let s = seen.clone();
        linked.link_exception(move |e: &Error| s.borrow_mut().push(format!("exception {e}")));
        assert_eq!(linked.join().unwrap(), 5);
        sylvan::sleep(MS);
        assert_eq!(*seen.borrow(), ["link true", "value 5"]);
        let quiet = sylvan::spawn(|| 0u8);
        quiet.link(|_| unreachable!("unlinked"));
        quiet.unlink_all();
        quiet.join().unwrap();

        let gs: Vec<Greenlet<()>> = (0..3).map(|_| sylvan::spawn(sylvan::yield_now)).collect();
        assert!(sylvan::joinall(&gs, None));
        let gs: Vec<Greenlet<()>> = (0..3).map(|_| sleeper()).collect();
        let r: Result<(), Survivors> = sylvan::killall(&gs, None);
        assert!(r.is_ok());

        sylvan::sleep(MS);
        sylvan::yield_now();
        let _idle = sylvan::spawn(sylvan::idle);
        let _ = sylvan::current();
    })
}

#[test]
fn waiting_and_time_as_sketched() {
    bounded(|| {
        let a = sylvan::spawn(|| sylvan::sleep(5 * MS));
        let b = sylvan::spawn(|| ());
        let ev = Event::new();
        let objs: [&dyn Waitable; 3] = [&a, &b, &ev];
        let ready: Vec<usize> = sylvan::wait(&objs, Some(Duration::from_secs(1)), Some(2));
        assert_eq!(ready, [1, 0]);
        let order: Vec<usize> = sylvan::iwait(&objs[..2], None).collect();
        assert_eq!(order.len(), 2);

        let t: Timeout = Timeout::start(Duration::from_secs(60));
        drop(t);
        let r: Result<u8, Elapsed> = sylvan::with_timeout(MS, || {
            sylvan::sleep(Duration::from_secs(60));
            1
        });
        assert!(r.is_err());
        assert_eq!(
            sylvan::with_timeout(Duration::from_secs(1), || 2).unwrap(),
            2
        );
    })
}

#[test]
fn sync_as_sketched() {
    bounded(|| {
        let ev = Event::new();
        ev.set();
        assert!(ev.is_set());
        ev.wait();
        ev.clear();
        assert!(!ev.wait_timeout(MS));

        let r = AsyncResult::<u8>::new();
        let set: Result<(), AlreadySet<u8>> = r.set(1);
        assert!(set.is_ok());
        assert!(r.set(2).is_err());
        assert_eq!(r.get().unwrap(), 1);
        let f = AsyncResult::<u8>::new();
        let _ = f.fail(Rc::new(std::io::Error::other("boom")));
        assert!(f.get().is_err());

        let s = Semaphore::new(1);
        let guard = s.acquire();
        assert!(s.try_acquire().is_none());
        assert!(s.acquire_timeout(MS).is_none());
        drop(guard);
        s.acquire().forget();
        s.release();
        let bs = BoundedSemaphore::new(1);
        assert!(bs.release().is_err());

        let m = Mutex::new(1);
        *m.lock() += 1;
        assert_eq!(*m.lock(), 2);

        let q = Queue::bounded(1);
        let _ = Queue::<u8>::unbounded();
        let put: Result<(), sylvan::sync::Closed<u8>> = q.put(1);
        put.unwrap();
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
        let got: Option<u8> = q.get();
        assert_eq!(got, Some(1));
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        q.close();
        assert_eq!(q.get(), None);

        let p = PriorityQueue::unbounded();
        p.put(3).unwrap();
        p.put(1).unwrap();
        assert_eq!(p.get(), Some(1));
        let l = LifoQueue::unbounded();
        l.put(1).unwrap();
        l.put(2).unwrap();
        assert_eq!(l.get(), Some(2));
        let j = JoinableQueue::unbounded();
        j.put(1).unwrap();
        j.get().unwrap();
        j.task_done();
        j.join();
        let c = Rc::new(Channel::new());
        let c2 = c.clone();
        let putter = sylvan::spawn(move || c2.put(9).unwrap());
        assert_eq!(c.get(), Some(9));
        putter.join().unwrap();
    })
}

#[test]
fn pools_net_and_threads_as_sketched() {
    bounded(|| {
        let pool = Pool::new(2);
        let g: Greenlet<u8> = pool.spawn(|| 1);
        assert_eq!(g.join().unwrap(), 1);
        let out: Vec<Result<u8, Error>> = pool.map(0..3u8, |x| x * 2);
        assert_eq!(
            out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [0, 2, 4]
        );
        let mut un: Vec<u8> = pool
            .imap_unordered(0..3u8, |x| x)
            .map(Result::unwrap)
            .collect();
        un.sort();
        assert_eq!(un, [0, 1, 2]);
        pool.join();
        assert!(pool.join_timeout(MS));
        pool.kill();
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.wait_available(None), 2);
        assert_eq!(pool.len(), 0);
        let group = Group::new();
        group.spawn(|| ());
        group.join();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = StreamServer::new(listener, |mut stream: TcpStream, _peer| {
            use std::io::Write;
            stream.write_all(b"hi")
        })
        .with_pool(Pool::new(4))
        .start()
        .unwrap();
        let mut c = TcpStream::connect_timeout(addr, Duration::from_secs(1)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut got).unwrap();
        assert_eq!(got, b"hi");
        c.shutdown(std::net::Shutdown::Both).unwrap();
        server.stop(Some(Duration::from_secs(1)));

        let v: u8 = sylvan::spawn_blocking(|| 7);
        assert_eq!(v, 7);
        let h: Handle = Handle::current();
        let (tx, rx) = sylvan::mpsc::channel();
        let t = std::thread::spawn(move || h.spawn(move || tx.send(1u8).unwrap()));
        assert_eq!(rx.recv().unwrap(), 1);
        t.join().unwrap().unwrap();
    })
}
