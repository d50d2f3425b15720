//! The parts of `std`'s socket API that a blocking program ported to
//! sylvan expects to find: non-blocking mode, Unix datagram sockets and the
//! UDP multicast options.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

use crate::net::unix_path;
use crate::util::DropFlag;

fn would_block<T: std::fmt::Debug>(r: io::Result<T>) {
    match r {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
        Ok(v) => panic!("expected WouldBlock, got {v:?}"),
    }
}

#[test]
fn nonblocking_tcp_returns_would_block_instead_of_parking_and_blocking_mode_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    would_block(listener.accept());
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    // Loopback connections are complete when connect returns.
    let (mut server, _) = listener.accept().unwrap();

    server.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    let t = Instant::now();
    would_block(server.read(&mut buf));
    assert!(t.elapsed() < Duration::from_secs(1));
    client.write_all(b"hi").unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 2);
    would_block(server.read(&mut buf));

    // A clone shares the mode, as std's duplicated descriptors do.
    let clone = server.try_clone().unwrap();
    would_block((&clone).read(&mut buf));
    clone.set_nonblocking(false).unwrap();
    let writer = sylvan::spawn(move || {
        client.write_all(b"later").unwrap();
        client
    });
    // Blocking again: parks until the writer has run.
    assert_eq!(server.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"later");
    drop(writer.join().unwrap());
}

#[test]
fn nonblocking_write_to_a_full_peer_is_would_block_with_part_written() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 1 << 16];
    let mut sent = 0usize;
    // The peer never reads: the buffers fill within a few MiB.
    let err = loop {
        match client.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
        assert!(sent < 256 << 20, "the send buffer never filled");
    };
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(sent > 0);
}

#[test]
fn nonblocking_mode_goes_with_into_std() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let mut s = server.into_std().unwrap();
    would_block(s.read(&mut [0u8; 4]));

    let (_client, server) = (
        TcpStream::connect(listener.local_addr().unwrap()).unwrap(),
        listener.accept().unwrap().0,
    );
    let s = server.into_std().unwrap();
    assert_eq!(s.read_timeout().unwrap(), None);
    // Blocking, as the mode was: a read with a timeout waits for it.
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let t = Instant::now();
    assert!((&s).read(&mut [0u8; 4]).is_err());
    assert!(t.elapsed() >= Duration::from_millis(15));
}

#[test]
fn nonblocking_udp_and_unix_sockets() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_nonblocking(true).unwrap();
    would_block(u.recv_from(&mut [0u8; 8]));
    u.send_to(b"x", u.local_addr().unwrap()).unwrap();
    assert_eq!(u.recv_from(&mut [0u8; 8]).unwrap().0, 1);

    let path = unix_path("nb");
    let l = UnixListener::bind(&path).unwrap();
    l.set_nonblocking(true).unwrap();
    would_block(l.accept());
    let c = UnixStream::connect(&path).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_nonblocking(true).unwrap();
    would_block((&s).read(&mut [0u8; 8]));
    (&c).write_all(b"ok").unwrap();
    assert_eq!((&s).read(&mut [0u8; 8]).unwrap(), 2);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn unix_datagrams_between_named_sockets_park_only_the_receiver() {
    let (pa, pb) = (unix_path("dg-a"), unix_path("dg-b"));
    let a = UnixDatagram::bind(&pa).unwrap();
    let b = UnixDatagram::bind(&pb).unwrap();
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = order.clone();
    let receiver = sylvan::spawn(move || {
        let mut buf = [0u8; 32];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        o.borrow_mut().push("received");
        (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
    });
    sylvan::yield_now(); // the receiver parks
    order.borrow_mut().push("sending");
    assert_eq!(a.send_to(b"hello", &pb).unwrap(), 5);
    let (got, from) = receiver.join().unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(from.as_deref(), Some(pa.as_path()));
    assert_eq!(*order.borrow(), ["sending", "received"]);

    // Connected: send and recv without addresses; datagram boundaries kept.
    let c = UnixDatagram::unbound().unwrap();
    c.connect(&pa).unwrap();
    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(pa.as_path()));
    c.send(b"one").unwrap();
    c.send(b"two!").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(a.recv(&mut buf).unwrap(), 3);
    assert_eq!(a.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"two!");

    let err = UnixDatagram::bind(&pa).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&*pa.to_string_lossy()), "{err}");
    std::fs::remove_file(&pa).unwrap();
    std::fs::remove_file(&pb).unwrap();
}

#[test]
fn unix_datagram_timeouts_kills_and_shutdown() {
    let (a, b) = UnixDatagram::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(30)));
    let t = Instant::now();
    let e = a.recv(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(t.elapsed() >= Duration::from_millis(25));
    assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());

    // A kill while parked in recv unwinds it; the socket still works.
    let drops = std::rc::Rc::new(std::cell::Cell::new(0));
    let f = DropFlag(drops.clone());
    let b2 = b.try_clone().unwrap();
    let g = sylvan::spawn(move || {
        let _guard = f;
        b2.recv(&mut [0u8; 4])
    });
    sylvan::yield_now();
    g.kill();
    assert!(g.join().unwrap_err().is_killed());
    assert_eq!(drops.get(), 1, "destructors ran");
    a.send(b"z").unwrap();
    assert_eq!(b.recv(&mut [0u8; 4]).unwrap(), 1);

    // Shutting down the read half wakes a parked receiver with 0 bytes.
    let b3 = b.try_clone().unwrap();
    let reader = sylvan::spawn(move || b3.recv(&mut [0u8; 4]));
    sylvan::yield_now();
    b.shutdown(Shutdown::Read).unwrap();
    assert!(
        reader.wait(Some(Duration::from_secs(5))),
        "shutdown woke the reader"
    );
    assert_eq!(reader.join().unwrap().unwrap(), 0);
    assert_eq!(b.recv_from(&mut [0u8; 4]).unwrap().0, 0);

    // Back to std, with the timeouts.
    drop(a);
    let s = b.into_std().unwrap();
    assert_eq!(s.read_timeout().unwrap(), None);
}

#[test]
fn udp_multicast_options_reach_the_socket() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_multicast_ttl_v4(4).unwrap();
    assert_eq!(u.multicast_ttl_v4().unwrap(), 4);
    u.set_multicast_loop_v4(false).unwrap();
    assert!(!u.multicast_loop_v4().unwrap());
    u.set_multicast_loop_v4(true).unwrap();
    assert!(u.multicast_loop_v4().unwrap());
    // Not a multicast group: the OS says no.
    let not_group = std::net::Ipv4Addr::new(127, 0, 0, 1);
    assert!(
        u.join_multicast_v4(&not_group, &std::net::Ipv4Addr::UNSPECIFIED)
            .is_err()
    );
}
