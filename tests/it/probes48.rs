//! Round 48: `sylvan::os::Fd` and `sylvan::os::wait_child` side by side with
//! std's blocking behaviour on a plain thread (the std half runs on the
//! blocking pool, so the hub keeps going): end of stream, broken pipes,
//! empty buffers, partial and large writes, `read_to_end`/`read_to_string`/
//! `lines`, timeouts, kills, shared readers, exit statuses, a child that
//! floods stdout and stderr at once, closing through drop, descriptors that
//! cannot be polled, and a descriptor made blocking again behind the `Fd`'s
//! back.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::os::{Fd, wait_child};

use crate::util::{bounded, child_command, first_error, is_child, yield_until};

/// What a call gave, comparable across std and sylvan.
type Got = Result<usize, (io::ErrorKind, Option<i32>)>;

fn got(r: io::Result<usize>) -> Got {
    r.map_err(|e| (e.kind(), e.raw_os_error()))
}

/// Runs `f` on a plain thread of the blocking pool (std's blocking calls
/// there block that thread only); this greenlet parks meanwhile.
fn on_std<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    sylvan::spawn_blocking(f)
}

/// A greenlet that counts 2 ms ticks: proof that the hub was not blocked.
fn ticker() -> (sylvan::Greenlet<()>, Rc<Cell<u32>>) {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let g = sylvan::spawn(move || {
        loop {
            sylvan::sleep(Duration::from_millis(2));
            t.set(t.get() + 1);
        }
    });
    (g, ticks)
}

fn getfl(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETFL only reads the flags of a descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "{}", io::Error::last_os_error());
    flags
}

fn pipe_capacity(fd: RawFd) -> usize {
    // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
    let n = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    assert!(n > 0, "{}", io::Error::last_os_error());
    n as usize
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn py(code: &str) -> Command {
    let mut c = Command::new("python3");
    c.args(["-c", code]);
    c
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// A child's stdout as a `PipeReader` (so `&PipeReader` gives `Read` to
/// several greenlets).
fn stdout_pipe(child: &mut Child) -> PipeReader {
    PipeReader::from(OwnedFd::from(child.stdout.take().unwrap()))
}

fn stdin_pipe(child: &mut Child) -> PipeWriter {
    PipeWriter::from(OwnedFd::from(child.stdin.take().unwrap()))
}

// ---------------------------------------------------------------- end of stream, broken pipes, empty buffers

/// Writes "hello world", closes the writer, then six reads of 3 bytes.
fn eof_script(r: &mut impl Read, w: impl Write) -> Vec<Got> {
    let mut w = w;
    w.write_all(b"hello world").unwrap();
    drop(w);
    let mut buf = [0u8; 3];
    (0..6).map(|_| got(r.read(&mut buf))).collect()
}

#[test]
fn eof_sequence_after_the_writer_closes_matches_std() {
    bounded(|| {
        let std = on_std(|| {
            let (mut r, w) = io::pipe().unwrap();
            eof_script(&mut r, w)
        });
        let (r, w) = io::pipe().unwrap();
        let mut r = Fd::new(r).unwrap();
        let w = Fd::new(w).unwrap();
        let ours = eof_script(&mut r, w);
        assert_eq!(std, [Ok(3), Ok(3), Ok(3), Ok(2), Ok(0), Ok(0)]);
        assert_eq!(ours, std);
    });
}

/// After the reader is gone: write, write_all, write_vectored, flush.
fn broken_script(w: &mut impl Write) -> Vec<Got> {
    // A child forked (not yet exec'd) by a concurrent test may hold the
    // reader for a moment: the first failure is waited for.
    let first = first_error(|| w.write(b"x"));
    vec![
        Err((first.kind(), first.raw_os_error())),
        got(w.write(b"more")),
        got(w.write_all(&[1u8; 100_000]).map(|()| 0)),
        got(w.write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])),
        got(w.flush().map(|()| 0)),
    ]
}

fn sigpipe_ignored() -> bool {
    // SAFETY: querying (not changing) the disposition of SIGPIPE.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction == libc::SIG_IGN
    }
}

#[test]
fn writes_after_the_reader_closed_are_broken_pipe_as_std_without_sigpipe() {
    bounded(|| {
        let std = on_std(|| {
            let (r, mut w) = io::pipe().unwrap();
            drop(r);
            broken_script(&mut w)
        });
        let (r, w) = io::pipe().unwrap();
        let mut w = Fd::new(w).unwrap();
        drop(r);
        let ours = broken_script(&mut w);
        let epipe = Err((io::ErrorKind::BrokenPipe, Some(libc::EPIPE)));
        assert_eq!(std[..4], [epipe, epipe, epipe, epipe]);
        assert_eq!(std[4], Ok(0), "flush of a pipe does nothing");
        assert_eq!(ours, std);
        assert!(sigpipe_ignored(), "SIGPIPE still ignored: no death by it");
    });
}

/// Empty reads and writes on an empty pipe, a full pipe, and closed ends.
fn empty_script(r: PipeReader, w: PipeWriter, wrap: bool) -> Vec<Got> {
    let cap = pipe_capacity(w.as_raw_fd());
    let mut v = Vec::new();
    if wrap {
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        v.push(got((&r).read(&mut [])));
        v.push(got(w.write(&[])));
        w.write_all(&vec![9u8; cap]).unwrap(); // exactly full
        v.push(got(w.write(&[])));
        v.push(got(w.write_vectored(&[IoSlice::new(&[])])));
        v.push(got((&r).read(&mut [])));
        drop(r);
        v.push(got(w.write(&[])));
    } else {
        let (mut r, mut w) = (r, w);
        v.push(got(r.read(&mut [])));
        v.push(got(w.write(&[])));
        w.write_all(&vec![9u8; cap]).unwrap();
        v.push(got(w.write(&[])));
        v.push(got(w.write_vectored(&[IoSlice::new(&[])])));
        v.push(got(r.read(&mut [])));
        drop(r);
        v.push(got(w.write(&[])));
    }
    v
}

#[test]
fn empty_reads_and_writes_return_at_once_as_std() {
    bounded(|| {
        let std = on_std(|| {
            let (r, w) = io::pipe().unwrap();
            empty_script(r, w, false)
        });
        let (r, w) = io::pipe().unwrap();
        let t = Instant::now();
        let ours = empty_script(r, w, true);
        assert_eq!(std, vec![Ok(0); 6]);
        assert_eq!(ours, std);
        assert!(t.elapsed() < Duration::from_secs(1), "nothing parked");
    });
}

#[test]
fn an_empty_read_with_the_writer_gone_and_an_empty_read_exact_match_std() {
    bounded(|| {
        let script = |r: &mut dyn Read| -> Vec<Got> {
            vec![
                got(r.read(&mut [])),
                got(r.read_exact(&mut []).map(|()| 0)),
                got(r.read(&mut [0u8; 4])),
            ]
        };
        let std = on_std(move || {
            let (mut r, w) = io::pipe().unwrap();
            drop(w);
            script(&mut r)
        });
        let (r, w) = io::pipe().unwrap();
        drop(w);
        let mut r = Fd::new(r).unwrap();
        assert_eq!(script(&mut r), std);
        assert_eq!(std, vec![Ok(0); 3]);
    });
}

#[test]
fn ends_closed_before_wrapping_give_eof_and_broken_pipe_at_once() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        drop(w);
        let mut r = Fd::new(r).unwrap();
        assert_eq!(got(r.read(&mut [0u8; 8])), Ok(0));
        let (r, w) = io::pipe().unwrap();
        drop(r);
        let mut w = Fd::new(w).unwrap();
        let e = first_error(|| w.write(b"x"));
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    });
}

#[test]
fn read_exact_past_the_end_is_unexpected_eof_as_std() {
    bounded(|| {
        let script = |r: &mut dyn Read, mut w: Box<dyn Write>| -> Vec<Got> {
            w.write_all(b"12345").unwrap();
            drop(w);
            let mut buf = [0u8; 8];
            let a = got(r.read_exact(&mut buf).map(|()| 0));
            let b = got(r.read(&mut buf));
            vec![a.map_err(|(k, _)| (k, None)), b]
        };
        let std = on_std(move || {
            let (mut r, w) = io::pipe().unwrap();
            script(&mut r, Box::new(w))
        });
        let (r, w) = io::pipe().unwrap();
        let mut r = Fd::new(r).unwrap();
        let ours = script(&mut r, Box::new(Fd::new(w).unwrap()));
        assert_eq!(std, [Err((io::ErrorKind::UnexpectedEof, None)), Ok(0)]);
        assert_eq!(ours, std);
    });
}

#[test]
fn vectored_reads_and_writes_match_std() {
    bounded(|| {
        fn script(r: &mut dyn Read, w: &mut dyn Write) -> (Got, Got, Vec<Vec<u8>>) {
            let wrote = got(w.write_vectored(&[
                IoSlice::new(b"ab"),
                IoSlice::new(b""),
                IoSlice::new(b"cdefg"),
            ]));
            let (mut a, mut b, mut c) = ([0u8; 2], [0u8; 3], [0u8; 10]);
            let read = got(r.read_vectored(&mut [
                IoSliceMut::new(&mut a),
                IoSliceMut::new(&mut b),
                IoSliceMut::new(&mut c),
            ]));
            (wrote, read, vec![a.to_vec(), b.to_vec(), c.to_vec()])
        }
        let std = on_std(|| {
            let (mut r, mut w) = io::pipe().unwrap();
            script(&mut r, &mut w)
        });
        let (r, w) = io::pipe().unwrap();
        let (mut r, mut w) = (Fd::new(r).unwrap(), Fd::new(w).unwrap());
        let ours = script(&mut r, &mut w);
        assert_eq!((std.0, std.1), (Ok(7), Ok(7)));
        assert_eq!(ours, std);
    });
}

// ---------------------------------------------------------------- large writes

#[test]
fn one_write_larger_than_the_pipe_is_partial_where_std_writes_it_all() {
    bounded(|| {
        const N: usize = 1 << 20;
        // std: one blocking write(2) of a megabyte returns only when all of
        // it went through (a thread drains the other end).
        let std_n = on_std(|| {
            let (mut r, mut w) = io::pipe().unwrap();
            let drain = std::thread::spawn(move || {
                let mut sink = Vec::new();
                r.read_to_end(&mut sink).unwrap();
                sink.len()
            });
            let n = w.write(&pattern(N)).unwrap();
            drop(w);
            assert_eq!(drain.join().unwrap(), n);
            n
        });
        assert_eq!(std_n, N);
        // sylvan: the descriptor is non-blocking, so one write returns what
        // fitted (Write's contract allows it; write_all loops).
        let (r, w) = io::pipe().unwrap();
        let cap = pipe_capacity(w.as_raw_fd());
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        let data = pattern(N);
        let n = w.write(&data).unwrap();
        assert!(n > 0 && n <= cap, "one write gave {n} (capacity {cap})");
        drop(w);
        let mut got = Vec::new();
        (&r).read_to_end(&mut got).unwrap();
        assert!(
            got == data[..n],
            "the reader sees exactly what was reported"
        );
    });
}

#[test]
fn write_all_to_a_slow_reader_greenlet_is_split_and_intact() {
    bounded(|| {
        const N: usize = 1 << 20;
        let (r, w) = io::pipe().unwrap();
        let cap = pipe_capacity(w.as_raw_fd());
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        let reader = sylvan::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            for _ in 0..100_000 {
                match (&r).read(&mut buf).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
                sylvan::yield_now(); // slow: one page per turn
            }
            got
        });
        let data = pattern(N);
        let mut sizes = Vec::new();
        let mut at = 0;
        while at < N {
            let n = w.write(&data[at..]).unwrap();
            assert!(n > 0 && n <= cap, "write gave {n}");
            sizes.push(n);
            at += n;
        }
        drop(w);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), N);
        assert!(got == data, "bytes lost or reordered");
        assert!(sizes.len() >= N / cap, "{} writes", sizes.len());
    });
}

// ---------------------------------------------------------------- whole-stream readers on child output

const PAYLOAD: &str = "import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(200003)))";

#[test]
fn read_to_end_of_a_childs_output_matches_std_output() {
    bounded(|| {
        let std = on_std(|| py(PAYLOAD).output().unwrap());
        let mut child = py(PAYLOAD).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let mut got = Vec::new();
        let n = out.read_to_end(&mut got).unwrap();
        assert_eq!(n, got.len());
        let status = wait_child(&mut child).unwrap();
        assert_eq!(std.stdout.len(), 200_003);
        assert!(got == std.stdout, "same bytes as Command::output");
        assert_eq!(status, std.status);
    });
}

fn to_string_of(code: &str) -> (Result<String, io::ErrorKind>, String) {
    let mut child = py(code).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
    let mut s = String::from("pre:");
    let r = out.read_to_string(&mut s).map_err(|e| e.kind());
    wait_child(&mut child).unwrap();
    (r.map(|n| n.to_string()), s)
}

fn to_string_of_std(code: &'static str) -> (Result<String, io::ErrorKind>, String) {
    on_std(move || {
        let mut child = py(code).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut s = String::from("pre:");
        let r = out.read_to_string(&mut s).map_err(|e| e.kind());
        child.wait().unwrap();
        (r.map(|n| n.to_string()), s)
    })
}

#[test]
fn read_to_string_of_valid_and_invalid_utf8_matches_std() {
    bounded(|| {
        const GOOD: &str = r"import sys; sys.stdout.buffer.write('café ✓\n'.encode() * 5000)";
        const BAD: &str = r"import sys; sys.stdout.buffer.write(b'ok' * 40000 + b'\xff\xfe tail')";
        const SPLIT: &str = r"import sys,time; o=sys.stdout.buffer; o.write(b'x\xc3'); o.flush(); time.sleep(0.05); o.write(b'\xa9!')";
        for code in [GOOD, BAD, SPLIT] {
            let std = to_string_of_std(code);
            let ours = to_string_of(code);
            assert_eq!(ours, std, "{code}");
        }
        assert_eq!(to_string_of(BAD).0, Err(io::ErrorKind::InvalidData));
        assert_eq!(to_string_of(SPLIT).1, "pre:xé!");
    });
}

const LINES: &str = r"import sys; o=sys.stdout.buffer; o.write(b'a\r\n\nb\n' + b'L' * 100000 + b'\n'); o.flush(); import time; time.sleep(0.03); o.write(b'\n\nlast-without-newline')";

#[test]
fn buf_read_lines_and_split_of_a_childs_output_match_std() {
    bounded(|| {
        let std = on_std(|| {
            let mut child = py(LINES).stdout(Stdio::piped()).spawn().unwrap();
            let out = child.stdout.take().unwrap();
            let lines: Vec<String> = BufReader::new(out).lines().map(Result::unwrap).collect();
            child.wait().unwrap();
            lines
        });
        let mut child = py(LINES).stdout(Stdio::piped()).spawn().unwrap();
        let out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let lines: Vec<String> = BufReader::with_capacity(1000, out)
            .lines()
            .map(Result::unwrap)
            .collect();
        assert!(wait_child(&mut child).unwrap().success());
        assert_eq!(std.len(), 7);
        assert_eq!(lines, std);
        assert_eq!(lines[0], "a", "lines() strips \\r\\n as std");
        // split on another byte, too
        let mut child = py(LINES).stdout(Stdio::piped()).spawn().unwrap();
        let out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let parts: Vec<Vec<u8>> = BufReader::new(out)
            .split(b'b')
            .map(Result::unwrap)
            .collect();
        wait_child(&mut child).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], b"a\r\n\n");
    });
}

// ---------------------------------------------------------------- timeouts

#[test]
fn writes_until_a_write_timeout_lose_and_duplicate_nothing() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        w.set_write_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        let mut accepted = 0usize;
        let e = loop {
            match w.write(&[7u8; 5000]) {
                Ok(n) => accepted += n,
                Err(e) => break e,
            }
            assert!(accepted < 10 << 20, "a pipe never holds this much");
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        // 5000-byte writes fill the pipe's pages unevenly: a little less
        // than its capacity fits, as for any non-blocking writer.
        assert!(accepted > 0 && accepted <= pipe_capacity(r.as_raw_fd()));
        drop(w);
        let mut got = Vec::new();
        (&r).read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), accepted);
    });
}

#[test]
fn a_read_timeout_leaves_eof_and_data_to_be_seen_at_once() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        r.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
        let e = (&r).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        w.write_all(b"abc").unwrap();
        drop(w);
        let t = Instant::now();
        let mut s = String::new();
        (&r).read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
        assert_eq!(got((&r).read(&mut [0u8; 4])), Ok(0));
        assert!(t.elapsed() < Duration::from_secs(1), "no wait at EOF");
    });
}

// ---------------------------------------------------------------- kills and shared readers

#[test]
fn a_reader_killed_while_parked_on_a_childs_stdout_loses_no_line() {
    bounded(|| {
        let mut child = py("import sys; sys.stdin.readline(); print('1'); print('2'); print('3')")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = Fd::new(child.stdin.take().unwrap()).unwrap();
        let out = Rc::new(Fd::new(stdout_pipe(&mut child)).unwrap());
        let o = out.clone();
        let first = sylvan::spawn(move || (&*o).read(&mut [0u8; 64]));
        yield_until("the first reader parks", || first.is_started());
        sylvan::yield_now();
        assert!(!first.is_dead());
        first.kill();
        assert!(first.join().unwrap_err().is_killed());
        input.write_all(b"go\n").unwrap();
        let lines: Vec<String> = BufReader::new(&*out).lines().map(Result::unwrap).collect();
        assert_eq!(lines, ["1", "2", "3"]);
        assert!(wait_child(&mut child).unwrap().success());
    });
}

#[test]
fn two_greenlets_reading_one_child_pipe_split_it_and_both_see_eof() {
    bounded(|| {
        const N: usize = 320_000;
        let script = format!("yes 0123456789abcde | head -c {N}");
        let mut child = sh(&script).stdout(Stdio::piped()).spawn().unwrap();
        let out = Rc::new(Fd::new(stdout_pipe(&mut child)).unwrap());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let out = out.clone();
                sylvan::spawn(move || {
                    let (mut n, mut eofs) = (0usize, 0);
                    let mut buf = [0u8; 3000];
                    for _ in 0..100_000 {
                        match (&*out).read(&mut buf).unwrap() {
                            0 => {
                                eofs += 1;
                                break;
                            }
                            k => n += k,
                        }
                        sylvan::yield_now();
                    }
                    (n, eofs)
                })
            })
            .collect();
        let res: Vec<(usize, u32)> = readers.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(res.iter().map(|r| r.0).sum::<usize>(), N);
        assert!(res.iter().all(|r| r.1 == 1), "both saw EOF: {res:?}");
        assert!(wait_child(&mut child).unwrap().success());
        // std: two threads on one pipe split it the same way in total.
        let total = on_std(move || {
            let mut child = sh(&script).stdout(Stdio::piped()).spawn().unwrap();
            let out = std::sync::Arc::new(stdout_pipe(&mut child));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let out = out.clone();
                    std::thread::spawn(move || {
                        let mut v = Vec::new();
                        (&*out).read_to_end(&mut v).unwrap();
                        v.len()
                    })
                })
                .collect();
            let t: usize = ts.into_iter().map(|t| t.join().unwrap()).sum();
            child.wait().unwrap();
            t
        });
        assert_eq!(total, N);
    });
}

#[test]
fn a_writer_killed_while_parked_on_a_childs_stdin_loses_nothing_it_reported() {
    bounded(|| {
        let mut child = py(
            "import sys,time; time.sleep(0.1); sys.stdout.write(str(len(sys.stdin.buffer.read())))",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let input = Rc::new(Fd::new(stdin_pipe(&mut child)).unwrap());
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let accepted = Rc::new(Cell::new(0usize));
        let (i, a) = (input.clone(), accepted.clone());
        let writer = sylvan::spawn(move || {
            let chunk = [5u8; 10_000];
            loop {
                let n = (&*i).write(&chunk).unwrap();
                a.set(a.get() + n);
            }
        });
        yield_until("the writer fills the pipe and parks", || {
            accepted.get() >= pipe_capacity(input.as_raw_fd())
        });
        sylvan::yield_now();
        writer.kill();
        (&*input).write_all(b"END!").unwrap();
        drop(input); // the last Rc: the child sees EOF
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        assert_eq!(s, (accepted.get() + 4).to_string());
        assert!(wait_child(&mut child).unwrap().success());
    });
}

// ---------------------------------------------------------------- children: wait, floods, EOF on stdin

#[test]
fn wait_child_statuses_equal_stds_child_wait() {
    bounded(|| {
        let scripts = [
            "exit 0",
            "exit 7",
            "kill -TERM $$",
            "kill -KILL $$",
            "exit 255",
        ];
        let std: Vec<ExitStatus> = on_std(move || {
            scripts
                .iter()
                .map(|s| sh(s).spawn().unwrap().wait().unwrap())
                .collect()
        });
        let ours: Vec<ExitStatus> = scripts
            .iter()
            .map(|s| wait_child(&mut sh(s).spawn().unwrap()).unwrap())
            .collect();
        assert_eq!(ours, std);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(ours[1].code(), Some(7));
        assert_eq!(ours[2].signal(), Some(libc::SIGTERM));
    });
}

#[test]
fn wait_child_lets_greenlets_ping_pong_over_pipes_meanwhile() {
    bounded(|| {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let (r1, w1) = io::pipe().unwrap();
        let (r2, w2) = io::pipe().unwrap();
        let (r1, mut w1) = (Fd::new(r1).unwrap(), Fd::new(w1).unwrap());
        let (r2, mut w2) = (Fd::new(r2).unwrap(), Fd::new(w2).unwrap());
        let done = Rc::new(Cell::new(0u32));
        let d = done.clone();
        let ping = sylvan::spawn(move || {
            let mut b = [0u8; 1];
            for i in 0..200u32 {
                w1.write_all(&[i as u8]).unwrap();
                (&r2).read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8);
                d.set(i + 1);
            }
        });
        let pong = sylvan::spawn(move || {
            let mut b = [0u8; 1];
            for _ in 0..200 {
                (&r1).read_exact(&mut b).unwrap();
                w2.write_all(&b).unwrap();
            }
        });
        let status = wait_child(&mut child).unwrap();
        assert!(status.success());
        assert_eq!(done.get(), 200, "the ping-pong ran while main waited");
        ping.join().unwrap();
        pong.join().unwrap();
    });
}

const FLOOD: &str = "import os\nfor i in range(24):\n    os.write(1, bytes([i]) * 65536)\n    os.write(2, bytes([i + 100]) * 65536)\n";

#[test]
fn a_child_flooding_stdout_and_stderr_is_read_by_two_greenlets_as_output_does() {
    bounded(|| {
        let std = on_std(|| py(FLOOD).output().unwrap());
        let mut child = py(FLOOD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let mut err = Fd::new(child.stderr.take().unwrap()).unwrap();
        let o = sylvan::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).map(|_| v)
        });
        let e = sylvan::spawn(move || {
            let mut v = Vec::new();
            err.read_to_end(&mut v).map(|_| v)
        });
        let status = wait_child(&mut child).unwrap();
        let (o, e) = (o.join().unwrap().unwrap(), e.join().unwrap().unwrap());
        assert_eq!(std.stdout.len(), 24 * 65536);
        assert!(
            o == std.stdout && e == std.stderr,
            "same streams as output()"
        );
        assert_eq!(status, std.status);
    });
}

#[test]
fn dropping_the_stdin_fd_gives_the_child_eof_and_into_inner_hands_it_back_blocking() {
    bounded(|| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = Fd::new(child.stdin.take().unwrap()).unwrap();
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        input.write_all(b"through cat").unwrap();
        drop(input);
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through cat");
        assert!(wait_child(&mut child).unwrap().success());

        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = Fd::new(child.stdin.take().unwrap()).unwrap();
        let mut input = input.into_inner();
        assert_eq!(
            getfl(input.as_raw_fd()) & libc::O_NONBLOCK,
            0,
            "blocking again"
        );
        input.write_all(b"plain").unwrap();
        drop(input);
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        assert_eq!(s, "plain");
        assert!(wait_child(&mut child).unwrap().success());
    });
}

#[test]
fn a_writer_parked_on_a_child_that_exits_unread_gets_broken_pipe_as_std() {
    bounded(|| {
        let std = on_std(|| {
            let mut child = Command::new("sleep")
                .arg("0.05")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            let e = input.write_all(&vec![1u8; 1 << 20]).unwrap_err();
            child.wait().unwrap();
            (e.kind(), e.raw_os_error())
        });
        let mut child = Command::new("sleep")
            .arg("0.05")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = Fd::new(child.stdin.take().unwrap()).unwrap();
        let (tick, ticks) = ticker();
        let e = input.write_all(&vec![1u8; 1 << 20]).unwrap_err();
        assert!(ticks.get() > 0, "the writer parked, the hub ran");
        assert!(wait_child(&mut child).unwrap().success());
        assert_eq!(std, (io::ErrorKind::BrokenPipe, Some(libc::EPIPE)));
        assert_eq!((e.kind(), e.raw_os_error()), std);
        tick.kill();
    });
}

#[test]
fn a_reader_parked_on_a_killed_childs_stdout_sees_eof_as_std() {
    bounded(|| {
        let std = on_std(|| {
            let mut child = Command::new("sleep")
                .arg("10")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                child.kill().unwrap();
                child.wait().unwrap()
            });
            let n = got(out.read(&mut [0u8; 8]));
            (n, killer.join().unwrap())
        });
        let mut child = Command::new("sleep")
            .arg("10")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let reader = sylvan::spawn(move || got(out.read(&mut [0u8; 8])));
        yield_until("the reader parks", || reader.is_started());
        sylvan::yield_now();
        assert!(!reader.is_dead());
        child.kill().unwrap();
        let status = wait_child(&mut child).unwrap();
        assert_eq!(reader.join().unwrap(), std.0);
        assert_eq!(std.0, Ok(0));
        assert_eq!(status, std.1);
    });
}

#[test]
fn io_copy_pumps_one_childs_stdout_into_anothers_stdin() {
    bounded(|| {
        let mut producer = py(PAYLOAD).stdout(Stdio::piped()).spawn().unwrap();
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut from = Fd::new(producer.stdout.take().unwrap()).unwrap();
        let mut to = Fd::new(cat.stdin.take().unwrap()).unwrap();
        let mut back = Fd::new(cat.stdout.take().unwrap()).unwrap();
        let pump = sylvan::spawn(move || io::copy(&mut from, &mut to));
        let mut got = Vec::new();
        back.read_to_end(&mut got).unwrap();
        assert_eq!(pump.join().unwrap().unwrap(), 200_003);
        assert!(got == pattern(200_003));
        assert!(wait_child(&mut producer).unwrap().success());
        assert!(wait_child(&mut cat).unwrap().success());
    });
}

// ---------------------------------------------------------------- descriptors that cannot be polled, flags

fn refused(file: std::fs::File, what: &str) {
    let e = Fd::new(file).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{what}: {e}");
    assert!(e.to_string().contains("cannot be polled"), "{what}: {e}");
}

#[test]
fn a_directory_dev_zero_and_a_memfd_are_refused_with_a_clear_error() {
    refused(std::fs::File::open("/tmp").unwrap(), "directory");
    refused(std::fs::File::open("/dev/zero").unwrap(), "/dev/zero");
    refused(std::fs::File::open("/dev/null").unwrap(), "/dev/null");
    // SAFETY: memfd_create reads a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"p48".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: just created, owned by nothing else.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    refused(file, "memfd");
    // The flags of a refused descriptor are left as they were (seen
    // through a dup, since the refused object is dropped).
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let dup = zero.try_clone().unwrap();
    let before = getfl(dup.as_raw_fd());
    refused(zero, "/dev/zero again");
    assert_eq!(getfl(dup.as_raw_fd()), before);
}

#[test]
fn a_pipe_held_as_a_file_works_through_an_fd() {
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let r = std::fs::File::from(OwnedFd::from(r));
        let w = std::fs::File::from(OwnedFd::from(w));
        let mut r = Fd::new(r).unwrap();
        let mut w = Fd::new(w).unwrap();
        let g = sylvan::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        });
        sylvan::yield_now();
        w.write_all(b"a file that is a pipe").unwrap();
        drop(w);
        assert_eq!(g.join().unwrap().unwrap(), "a file that is a pipe");
    });
}

#[test]
fn o_nonblock_cleared_after_adoption_blocks_the_thread_as_documented() {
    // `get_ref`: "Do not change its blocking mode." Cleared anyway, a read
    // of an empty pipe is an ordinary blocking read(2): the whole hub
    // waits (here only until a plain thread writes).
    bounded(|| {
        let (r, w) = io::pipe().unwrap();
        let orig = getfl(r.as_raw_fd());
        let r = Fd::new(r).unwrap();
        let (tick, ticks) = ticker();
        yield_until("the ticker ticks", || ticks.get() > 0);
        // SAFETY: F_SETFL on an open descriptor.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, orig & !libc::O_NONBLOCK) };
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            (&w).write_all(b"late").unwrap();
            w
        });
        let before = ticks.get();
        let t = Instant::now();
        let mut buf = [0u8; 8];
        let n = (&r).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(t.elapsed() >= Duration::from_millis(80));
        assert_eq!(ticks.get(), before, "the thread was blocked: no tick");
        let w = writer.join().unwrap();
        drop((r, w));
        tick.kill();
    });
}

// ---------------------------------------------------------------- stdin and stdout of a re-executed test binary

#[test]
fn stdin_wrapped_in_a_child_is_read_line_by_line_while_a_ticker_runs() {
    const NAME: &str = "p48-stdin";
    if is_child(NAME) {
        bounded(|| {
            let (tick, ticks) = ticker();
            let input = Fd::new(io::stdin()).unwrap();
            assert_ne!(getfl(0) & libc::O_NONBLOCK, 0);
            let lines: Vec<String> = BufReader::new(input).lines().map(Result::unwrap).collect();
            assert_eq!(getfl(0) & libc::O_NONBLOCK, 0, "stdin blocking again");
            println!("LINES {} TICKS {}", lines.join(","), ticks.get() > 5);
            tick.kill();
        });
        println!("PROBE ok");
        return;
    }
    bounded(|| {
        let mut cmd = child_command(
            "probes48::stdin_wrapped_in_a_child_is_read_line_by_line_while_a_ticker_runs",
            NAME,
        );
        let out = on_std(move || {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            for i in 0..5 {
                std::thread::sleep(Duration::from_millis(20));
                writeln!(input, "l{i}").unwrap();
            }
            drop(input);
            child.wait_with_output().unwrap()
        });
        let (stdout, stderr) = crate::util::texts(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("LINES l0,l1,l2,l3,l4 TICKS true"),
            "{stdout}\n{stderr}"
        );
        assert!(stdout.contains("PROBE ok"), "{stdout}");
    });
}

#[test]
fn stdout_wrapped_in_a_child_feeds_a_slow_parent_intact() {
    const NAME: &str = "p48-stdout";
    const N: usize = 1 << 20;
    if is_child(NAME) {
        bounded(|| {
            let (tick, ticks) = ticker();
            let mut out = Fd::new(io::stdout()).unwrap();
            let mut data = b"BEGIN".to_vec();
            data.extend((0..N).map(|i| b'a' + (i % 26) as u8));
            data.extend_from_slice(b"END\n");
            out.write_all(&data).unwrap();
            out.flush().unwrap();
            let parked = ticks.get() > 5;
            drop(out);
            assert_eq!(getfl(1) & libc::O_NONBLOCK, 0, "stdout blocking again");
            println!("\nPARKED {parked}");
            tick.kill();
        });
        println!("PROBE ok");
        return;
    }
    bounded(|| {
        let mut cmd = child_command(
            "probes48::stdout_wrapped_in_a_child_feeds_a_slow_parent_intact",
            NAME,
        );
        let (text, status) = on_std(move || {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut v = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = out.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                v.extend_from_slice(&buf[..n]);
                std::thread::sleep(Duration::from_micros(300)); // a slow reader
            }
            (v, child.wait().unwrap())
        });
        assert!(status.success());
        let s = String::from_utf8_lossy(&text);
        let begin = s.find("BEGIN").expect("BEGIN") + 5;
        let end = s.find("END\n").expect("END");
        assert_eq!(end - begin, N);
        assert!(
            s[begin..end]
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'a' + (i % 26) as u8),
            "bytes lost or reordered"
        );
        assert!(
            s.contains("PARKED true"),
            "the child's hub ran while stdout was full"
        );
        assert!(s.contains("PROBE ok"));
    });
}

// ---------------------------------------------------------------- leaks

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn wait_child_and_fds_leak_no_descriptor() {
    crate::util::in_child(
        "probes48::wait_child_and_fds_leak_no_descriptor",
        "p48-leak",
        || {
            // Warm up: the hub, the pool and a first pidfd.
            wait_child(&mut sh("sleep 0.01").spawn().unwrap()).unwrap();
            on_std(|| ());
            let before = open_fds();
            for i in 0..20 {
                let script = if i % 2 == 0 { "true" } else { "sleep 0.01" };
                let mut c = sh(script).stdout(Stdio::piped()).spawn().unwrap();
                let mut out = Fd::new(c.stdout.take().unwrap()).unwrap();
                out.read_to_end(&mut Vec::new()).unwrap();
                wait_child(&mut c).unwrap();
                let (r, w) = io::pipe().unwrap();
                let (r, w) = (Fd::new(r).unwrap(), Fd::new(w).unwrap());
                let _ = r.into_inner();
                drop(w);
            }
            // A wait cut by a timeout gives its pidfd back, too.
            let mut c = Command::new("sleep").arg("5").spawn().unwrap();
            assert!(
                sylvan::with_timeout(Duration::from_millis(10), || wait_child(&mut c)).is_err()
            );
            c.kill().unwrap();
            wait_child(&mut c).unwrap();
            assert_eq!(open_fds(), before, "descriptors leaked");
        },
    );
}

/// Five calls on a non-blocking pipe: empty read, big write, write to the
/// full pipe, a small read, another big write.
fn nonblocking_script(r: &mut dyn Read, w: &mut dyn Write) -> Vec<Got> {
    vec![
        got(r.read(&mut [0u8; 4])),
        got(w.write(&vec![1u8; 100_000])),
        got(w.write(b"x")),
        got(r.read(&mut [0u8; 10])),
        got(w.write(&vec![1u8; 100_000])),
    ]
}

fn std_nonblocking_script() -> Vec<Got> {
    on_std(|| {
        let (mut r, mut w) = io::pipe().unwrap();
        for fd in [r.as_raw_fd(), w.as_raw_fd()] {
            // SAFETY: F_SETFL on an open descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFL, getfl(fd) | libc::O_NONBLOCK) };
        }
        nonblocking_script(&mut r, &mut w)
    })
}

fn sylvan_nonblocking_script() -> Vec<Got> {
    let (r, w) = io::pipe().unwrap();
    let (mut r, mut w) = (Fd::new(r).unwrap(), Fd::new(w).unwrap());
    r.set_nonblocking(true);
    w.set_nonblocking(true);
    nonblocking_script(&mut r, &mut w)
}

#[test]
fn set_nonblocking_true_matches_a_raw_non_blocking_pipe_in_kinds_and_counts() {
    bounded(|| {
        let kinds = |v: Vec<Got>| -> Vec<Result<usize, io::ErrorKind>> {
            v.into_iter().map(|g| g.map_err(|(k, _)| k)).collect()
        };
        let std = kinds(std_nonblocking_script());
        let ours = kinds(sylvan_nonblocking_script());
        let wb = Err(io::ErrorKind::WouldBlock);
        assert_eq!(std[0], wb);
        assert_eq!(std[2], wb);
        assert_eq!(std[4], wb);
        assert_eq!(ours, std);
    });
}

#[test]
fn set_nonblocking_would_block_keeps_the_os_error_as_std() {
    bounded(|| {
        let std = std_nonblocking_script();
        assert_eq!(std[0], Err((io::ErrorKind::WouldBlock, Some(libc::EAGAIN))));
        assert_eq!(sylvan_nonblocking_script(), std);
    });
}
