//! Thread exit: every greenlet still alive is unwound (destructors run)
//! while the hub still works, then the hub's tables are emptied.

use super::*;

impl Hub {
    /// Unwinds every greenlet still alive (destructors run) at thread exit.
    ///
    /// Runs from a thread-local destructor on the thread's own stack. `HUB`
    /// still points here, so greenlets unwinding now reach a working hub.
    pub(super) fn teardown(&self) {
        // Failures left for main, which will not block again in its body:
        // dropped (each was reported), and none raised from now on, into
        // the destructors below either.
        self.main_over.set(true);
        for payload in self.main_raise.take() {
            sylvan_runtime::drop_payload(payload);
        }
        // Main's greenlet-local values first, while the hub still works
        // fully: their destructors may use other greenlet-locals, spawn or
        // block, as those of a greenlet's do when it ends.
        if let Some(panic) = self.task(MAIN).locals.clear() {
            stderr!(
                "sylvan: a destructor of main's greenlet-local values panicked at thread exit: {}",
                sylvan_runtime::payload_message(&*panic)
            );
            sylvan_runtime::drop_payload(panic);
        }
        self.closing.set(true);
        self.beacon.alive.store(false, Ordering::Release);
        // Work other threads handed over that the loop never ran: dropped
        // with the hub, not when the last `Handle` goes (what it holds, a
        // sender or a file, is released now).
        crate::report_panic(
            crate::drop_each(self.remote.close()),
            "a Handle::spawn job that never ran, at thread exit",
        );
        // Kills each greenlet still mid-body (at most three times: one that
        // catches its kills is left), cancels each one that never started,
        // and goes round again for those their destructors spawned, while
        // rounds make progress (bounded, against destructors that spawn
        // forever).
        let mut kills: Vec<(u64, u32)> = Vec::new();
        for _round in 0..TEARDOWN_ROUNDS {
            // SAFETY: as in `task`; the keys are copied out before any
            // greenlet runs.
            let keys: Vec<Key> = unsafe { (*self.tasks.get()).iter() }
                .map(|(k, _)| k as Key)
                .filter(|&k| k != MAIN)
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut progress = false;
            for key in keys {
                // SAFETY: as in `task`.
                if unsafe { (*self.tasks.get()).get(key as usize) }.is_none() {
                    continue;
                }
                let task = self.task(key);
                let id = task.id;
                if task.core.state() == State::Dead {
                    self.reap(key, id);
                    progress = true;
                } else if !task.core.is_mid_body() {
                    let _hold = self.hold(key);
                    task.core.set_state(State::Scheduled);
                    crate::report_panic(
                        self.cancel_unstarted(task),
                        "a greenlet that never started, at thread exit",
                    );
                    self.reap(key, id);
                    progress = true;
                } else {
                    let n = match kills.iter_mut().find(|(k, _)| *k == id) {
                        Some((_, n)) => n,
                        None => {
                            kills.push((id, 0));
                            &mut kills.last_mut().expect("just pushed").1
                        }
                    };
                    if *n >= 3 {
                        continue;
                    }
                    *n += 1;
                    progress = true;
                    task.wake.set(Wake::Throw(Throw::Kill));
                    self.current.set(key);
                    self.cur.set(task);
                    // SAFETY: on the thread's own stack, the task is suspended
                    // mid-body, nothing of the hub is borrowed.
                    let resumed = unsafe { task.core.resume() };
                    self.current.set(MAIN);
                    self.cur.set(self.task(MAIN));
                    if resumed == Resumed::Finished {
                        self.finish(key);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        // SAFETY: as in `task`.
        let survivors: Vec<Entry> = unsafe { (*self.tasks.get()).drain() }.collect();
        for entry in survivors {
            // SAFETY: the entry keeps the task alive.
            let task = unsafe { entry.task.as_ref() };
            if task.id == 0 {
                continue;
            }
            if kills.iter().any(|&(k, n)| k == task.id && n >= 3) {
                stderr!(
                    "sylvan: greenlet {} survived three kills at thread exit; its stack is leaked",
                    GreenletId(task.id)
                );
            } else {
                stderr!(
                    "sylvan: greenlet {} was still being spawned by destructors after \
                     {TEARDOWN_ROUNDS} rounds of teardown at thread exit; it is leaked",
                    GreenletId(task.id)
                );
            }
            std::mem::forget(entry);
        }
        self.timers.borrow_mut().clear();
    }
}

/// Rounds of kills and cancels at thread exit before the greenlets left are
/// leaked (see `Hub::teardown`).
const TEARDOWN_ROUNDS: usize = 64;
