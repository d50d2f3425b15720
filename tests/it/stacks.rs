//! Stacks: the pool, deep recursion, allocation failure, overflow.

use std::hint::black_box;
use std::time::Duration;

use crate::util::{is_child, run_child};

#[test]
fn stacks_are_reused_from_the_pool() {
    // warm up
    for _ in 0..4 {
        sylvan::spawn(|| ()).join().unwrap();
    }
    let before = sylvan::stats();
    for _ in 0..100 {
        sylvan::spawn(|| ()).join().unwrap();
    }
    let after = sylvan::stats();
    assert_eq!(
        after.stacks_mapped, before.stacks_mapped,
        "no new mmap after warm-up"
    );
    assert!(after.stacks_reused >= before.stacks_reused + 100);
}

#[test]
fn the_pool_unmaps_past_its_bound() {
    sylvan::set_stack_pool_limit(8);
    let gs: Vec<_> = (0..32)
        .map(|_| sylvan::spawn(|| sylvan::sleep(Duration::from_millis(1))))
        .collect();
    sylvan::joinall(&gs, None);
    let s = sylvan::stats();
    assert_eq!(s.stacks_pooled, 8);
    assert!(s.stacks_unmapped >= 24);
}

/// Recurses until `budget` bytes of stack below `top` are in use, measured
/// by address so it holds in debug and release builds alike.
#[inline(never)]
pub fn recurse(top: usize, budget: usize) -> usize {
    let buf = black_box([7u8; 256]);
    let here = &buf as *const _ as usize;
    if top - here >= budget {
        top - here
    } else {
        recurse(top, budget) + buf[1] as usize % 2
    }
}

#[test]
fn deep_recursion_using_most_of_a_64k_stack_succeeds() {
    // 56 KiB of a 64 KiB stack, leaving room for the greenlet's entry frames
    let g = sylvan::Builder::new()
        .stack_size(64 << 10)
        .spawn(|| {
            let marker = 0u8;
            recurse(&marker as *const _ as usize, 56 << 10)
        })
        .unwrap();
    assert!(g.join().unwrap() >= 56 << 10);
}

#[test]
fn an_impossible_stack_is_an_error_from_builder_and_a_panic_from_spawn() {
    let err = sylvan::Builder::new()
        .stack_size(1 << 50)
        .spawn(|| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(msg.contains("too large"), "{msg}");
    // the hub is fine afterwards
    assert_eq!(sylvan::spawn(|| 2).join().unwrap(), 2);
}

#[test]
fn hitting_the_kernel_map_limit_is_a_clear_error() {
    const NAME: &str = "map_limit";
    if is_child(NAME) {
        let mut gs = Vec::new();
        let err = loop {
            match sylvan::Builder::new()
                .stack_size(16 << 10)
                .spawn(|| sylvan::sleep(Duration::from_secs(3600)))
            {
                Ok(g) => gs.push(g),
                Err(e) => break e,
            }
            assert!(gs.len() < 1_000_000, "no limit reached");
        };
        // A greenlet of the default size, whose stack is reserved at spawn
        // and taken when it first runs, fails at spawn just the same.
        let default = sylvan::Builder::new()
            .spawn(|| ())
            .expect_err("no stack can be mapped");
        assert!(
            default.to_string().contains("vm.max_map_count"),
            "{default}"
        );
        println!("CHILD count={} err={err}", gs.len());
        std::process::exit(0);
    }
    let out = run_child(
        "stacks::hitting_the_kernel_map_limit_is_a_clear_error",
        NAME,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = stdout.find("CHILD count=");
    let line = at
        .map(|i| &stdout[i..])
        .unwrap_or_else(|| panic!("child did not report:\n{stdout}\n{stderr}"));
    assert!(line.contains("vm.max_map_count"), "{line}");
    let count: usize = line["CHILD count=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(count > 1_000, "{line}");
}

#[test]
fn stack_overflow_in_a_greenlet_prints_its_name_and_aborts() {
    const NAME: &str = "overflow";
    if is_child(NAME) {
        #[inline(never)]
        fn forever(n: u64) -> u64 {
            let buf = black_box([n; 64]);
            if black_box(n) == u64::MAX {
                return 0;
            }
            forever(n + 1) + buf[3]
        }
        let g = sylvan::Builder::new()
            .name("deep")
            .stack_size(64 << 10)
            .spawn(|| forever(0))
            .unwrap();
        let _ = g.join();
        unreachable!();
    }
    let out = run_child(
        "stacks::stack_overflow_in_a_greenlet_prints_its_name_and_aborts",
        NAME,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "{stderr}");
    assert!(
        stderr.contains("greenlet 'deep' overflowed its stack of 64 KiB"),
        "{stderr}"
    );
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn a_greenlet_that_captured_a_large_value_runs() {
    // Larger than either switch places inline: the body is boxed.
    let big = [3u8; 16 * 1024];
    let g = sylvan::spawn(move || big.iter().map(|&b| u64::from(b)).sum::<u64>());
    assert_eq!(g.join().unwrap(), 3 * 16 * 1024);
}
