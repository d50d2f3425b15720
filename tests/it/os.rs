//! `sylvan::os::Fd`: pipes, a child process's output, timeouts, kills,
//! the descriptor's flags, and the descriptors it refuses.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::os::Fd;

use crate::util::{DropFlag, bounded, yield_until};

fn nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL only reads the flags of an open descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "{}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// A greenlet that counts 5 ms ticks: proof that the hub was not blocked.
fn ticker() -> (sylvan::Greenlet<()>, Rc<Cell<u32>>) {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let g = sylvan::spawn(move || {
        loop {
            sylvan::sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        }
    });
    (g, ticks)
}

#[test]
fn a_child_process_output_is_read_while_other_greenlets_run() {
    bounded(|| {
        let mut child = Command::new("sh")
            .args(["-c", "for i in 1 2 3 4; do echo line $i; sleep 0.05; done"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let (ticker, ticks) = ticker();
        let lines: Vec<String> = BufReader::new(out).lines().map(Result::unwrap).collect();
        assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4"]);
        // The script took at least 150 ms; the ticker ran meanwhile.
        assert!(
            ticks.get() >= 5,
            "the hub was blocked: {} ticks",
            ticks.get()
        );
        let status = sylvan::spawn_blocking(move || child.wait()).unwrap();
        assert!(status.success());
        ticker.kill();
    });
}

#[test]
fn a_writer_parks_on_a_full_pipe_until_the_reader_drains_it() {
    bounded(|| {
        const N: usize = 1 << 20;
        let (r, w) = io::pipe().unwrap();
        let mut r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = sylvan::spawn(move || {
            w.write_all(&data).unwrap();
            // Dropping the write end: the reader sees EOF.
        });
        sylvan::yield_now();
        assert!(!writer.is_dead(), "a megabyte cannot fit in a pipe");
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), N);
        assert!(got == expect, "bytes lost or reordered");
        writer.join().unwrap();
    });
}

#[test]
fn two_greenlets_share_one_fd_through_references() {
    bounded(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Rc::new(Fd::new(a).unwrap());
        let b = Fd::new(b).unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                sylvan::spawn(move || {
                    let mut buf = [0u8; 1];
                    (&*a).read_exact(&mut buf).unwrap();
                    buf[0]
                })
            })
            .collect();
        sylvan::yield_now();
        (&b).write_all(b"xy").unwrap();
        let mut got: Vec<u8> = readers.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, b"xy");
    });
}

#[test]
fn a_read_times_out_and_the_fd_stays_usable() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        assert_eq!(r.read_timeout(), None);
        r.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(r.read_timeout(), Some(Duration::from_millis(50)));
        let t = Instant::now();
        let e = (&r).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("descriptor read timed out"), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        w.write_all(b"late").unwrap();
        let mut got = [0u8; 4];
        (&r).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        // A zero timeout is refused, as std's sockets refuse it.
        let e = r.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn a_reader_killed_while_parked_leaves_the_fd_to_the_next_reader() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let r = Rc::new(Fd::new(r).unwrap());
        let mut w = Fd::new(w).unwrap();
        let dropped = Rc::new(Cell::new(0));
        let (r1, flag) = (r.clone(), DropFlag(dropped.clone()));
        let first = sylvan::spawn(move || {
            let _flag = flag;
            (&*r1).read(&mut [0u8; 4])
        });
        yield_until("the first reader parks", || first.is_started());
        first.kill();
        assert_eq!(dropped.get(), 1, "the killed reader's destructors ran");
        let r2 = r.clone();
        let second = sylvan::spawn(move || {
            let mut got = [0u8; 2];
            (&*r2).read_exact(&mut got).map(|()| got)
        });
        sylvan::yield_now();
        w.write_all(b"ok").unwrap();
        assert_eq!(&second.join().unwrap().unwrap(), b"ok");
    });
}

#[test]
fn nonblocking_mode_gives_would_block_instead_of_parking() {
    bounded(|| {
        let (r, _w) = io::pipe().unwrap();
        let r = Fd::new(r).unwrap();
        r.set_nonblocking(true);
        let e = (&r).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        r.set_nonblocking(false);
        r.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let e = (&r).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    });
}

#[test]
fn into_inner_and_drop_restore_the_original_flags() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        assert!(!nonblocking(&r));
        let fd = Fd::new(r).unwrap();
        assert!(nonblocking(&fd));
        let r = fd.into_inner();
        assert!(!nonblocking(&r), "into_inner made it blocking again");
        // The flags belong to the open file description, shared with a
        // dup: dropping the Fd of one restores them for the other.
        let dup = w.try_clone().unwrap();
        let fd = Fd::new(w).unwrap();
        assert!(nonblocking(&dup));
        drop(fd);
        assert!(!nonblocking(&dup), "drop made it blocking again");
        // A descriptor that was non-blocking already stays so.
        let (r2, _w2) = io::pipe().unwrap();
        let fd = Fd::new(r2).unwrap();
        let r2 = fd.into_inner();
        // Set it ourselves, then wrap and unwrap.
        // SAFETY: F_SETFL on an open descriptor.
        unsafe { libc::fcntl(r2.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let r2 = Fd::new(r2).unwrap().into_inner();
        assert!(nonblocking(&r2));
        drop(r);
    });
}

#[test]
fn two_opens_of_one_fifo_keep_their_own_flags_and_dups_share_theirs() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("sylvan-os-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("fifo");
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    bounded(|| {
        // Two read ends of one FIFO: one file, same access mode, two open
        // file descriptions, the first non-blocking and the second not.
        // (The writer lets the blocking open return at once.)
        let open_read = |flags| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(&path)
                .unwrap()
        };
        let first = open_read(libc::O_NONBLOCK);
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let second = open_read(0);
        assert!(nonblocking(&first) && !nonblocking(&second));
        let second_dup = second.try_clone().unwrap();
        let first = Fd::new(first).unwrap();
        let second = Fd::new(second).unwrap();
        let second_dup = Fd::new(second_dup).unwrap();
        // A dup shares its description's flags: the first of the two to
        // go leaves them to the other.
        let second_dup = second_dup.into_inner();
        assert!(nonblocking(&second_dup), "still wrapped through `second`");
        let second = second.into_inner();
        assert!(!nonblocking(&second), "the second open is blocking again");
        let first = first.into_inner();
        assert!(
            nonblocking(&first),
            "the first open was non-blocking: left so"
        );
        drop((first, second, second_dup, writer));
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_regular_file_is_refused_with_a_clear_error() {
    let path = std::env::temp_dir().join(format!("sylvan-os-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let e = Fd::new(file).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("cannot be polled"), "{e}");
    assert!(e.to_string().contains("spawn_blocking"), "{e}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn wrapping_the_same_descriptor_twice_is_refused() {
    let (r, _w) = io::pipe().unwrap();
    let fd = Fd::new(r).unwrap();
    // Anything that names the same number (it closes nothing).
    #[derive(Debug)]
    struct Number(i32);
    impl AsRawFd for Number {
        fn as_raw_fd(&self) -> i32 {
            self.0
        }
    }
    let e = Fd::new(Number(fd.as_raw_fd())).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("already registered"), "{e}");
    assert!(nonblocking(&fd), "the first Fd's mode is untouched");
}

#[test]
fn wait_child_parks_only_the_caller_and_reports_the_exit_code() {
    bounded(|| {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.1; exit 3"])
            .spawn()
            .unwrap();
        let (ticker, ticks) = ticker();
        let status = sylvan::os::wait_child(&mut child).unwrap();
        assert_eq!(status.code(), Some(3));
        assert!(
            ticks.get() >= 5,
            "the hub was blocked: {} ticks",
            ticks.get()
        );
        // Already reaped: asking again answers at once, the same.
        assert_eq!(sylvan::os::wait_child(&mut child).unwrap().code(), Some(3));
        ticker.kill();
    });
}

#[test]
fn wait_child_under_a_timeout_leaves_the_child_to_a_later_wait() {
    bounded(|| {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let r = sylvan::with_timeout(Duration::from_millis(50), || {
            sylvan::os::wait_child(&mut child)
        });
        assert!(r.is_err(), "the child is still running: the wait timed out");
        child.kill().unwrap();
        let status = sylvan::os::wait_child(&mut child).unwrap();
        assert!(!status.success(), "killed by a signal: {status}");
    });
}
