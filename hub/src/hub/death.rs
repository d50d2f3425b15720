//! Settling a dead greenlet: its stack back to the pool, its failure
//! recorded and reported by the error policy, its links started.

use super::*;

impl Hub {
    /// A greenlet's body is over: recycle its stack, settle its outcome,
    /// report a failure, notify its links, and drop it from the table.
    pub(super) fn finish(&self, key: Key) {
        let task = self.task(key);
        let id = task.id;
        if let Some(stack) = task.core.take_stack() {
            self.pool.borrow_mut().put(stack);
        }
        self.on_dead(task);
        self.reap(key, id);
    }

    /// Settles a dead task (finished or cancelled): failure record, report,
    /// links.
    pub(crate) fn on_dead(&self, task: &Task) {
        let error = match task.core.outcome() {
            Outcome::Panicked => {
                let panic = task.core.take_panic();
                panic.map(Error::Panicked)
            }
            Outcome::TimedOut(_) => Some(Error::TimedOut),
            _ => None,
        };
        if let Some(error) = error {
            *task.failure.borrow_mut() = Some(Box::new(error));
            if self.closing.get() {
                self.report_closing(task);
            } else {
                self.report(task);
                if task.raise_in_main.get() {
                    self.raise_failure_in_main(task);
                }
            }
        }
        let links = std::mem::take(&mut *task.links.borrow_mut());
        if self.closing.get() {
            // No new greenlets at teardown: callbacks are dropped unrun (their
            // guards settle the bookkeeping), waiters are being killed anyway.
            crate::report_panic(
                crate::drop_each(links),
                "link callbacks that never ran, at thread exit",
            );
            return;
        }
        let outcome = task.core.outcome();
        for link in links {
            match link {
                Link::Waiter(r) => self.wake(r, Wake::Ready),
                Link::Gone => {}
                Link::Callback { when, f, .. } => {
                    if when.matches(outcome) {
                        crate::task::spawn_link_callback(self, task, f);
                    } else {
                        drop_caught(f, task.id);
                    }
                }
            }
        }
    }

    /// A signal handler's greenlet failed: after the report, its failure
    /// is raised in main, as gevent raises a signal handler's exception in
    /// the main greenlet. A panic's payload goes (the record keeps the
    /// message and location); a `Timeout` that escaped the handler is
    /// raised as [`Elapsed`](crate::Elapsed), gevent raising the `Timeout`.
    #[cold]
    fn raise_failure_in_main(&self, task: &Task) {
        let payload = match task.failure.borrow_mut().as_deref_mut() {
            Some(Error::Panicked(p)) => p.take_payload(),
            Some(Error::TimedOut) => Some(Box::new(crate::time::Elapsed::new()) as crate::Payload),
            _ => None,
        };
        if let Some(payload) = payload {
            self.raise_in_main(payload);
        }
    }

    fn report(&self, task: &Task) {
        let policy = self.policy.borrow().clone();
        let failure = task.failure.borrow();
        let Some(error) = failure.as_deref() else {
            return;
        };
        let waiter = task
            .links
            .borrow()
            .iter()
            .any(|l| matches!(l, Link::Waiter(_)));
        let f = Failure {
            id: GreenletId(task.id),
            name: task.name.as_deref(),
            spawned_at: task.site,
            error,
            observed: waiter || task.observers.get() > 0,
        };
        // Settled, unless `IgnoreObserved` leaves it to its observers: a
        // `join` takes it (nothing is left to report), a link callback
        // that runs with it settles it, and one dropped unrun reports it
        // (`report_unobserved`). A waiter in `wait`, `kill` or `joinall`
        // sees the death, not the failure: it does not settle it.
        if !matches!(policy, ErrorPolicy::IgnoreObserved) || !f.observed {
            task.failure_settled.set(true);
        }
        policy.handle(&f);
        drop(failure);
        // A `Custom` policy replaced while it ran (by itself, say) is gone
        // but for this clone: its captures' destructors run when it drops,
        // and may block, which they cannot do here on the hub. A greenlet
        // of its own drops it; if none can be made (no stack), it is
        // dropped here, a panic of its captures reported.
        if let ErrorPolicy::Custom(f) = policy
            && std::rc::Rc::strong_count(&f) == 1
        {
            let slot = std::rc::Rc::new(Cell::new(Some(f)));
            let s = slot.clone();
            if crate::Builder::new().spawn(move || drop(s.take())).is_err() {
                crate::report_panic(crate::drop_each(slot.take()), "a replaced error policy");
            }
        }
    }

    /// Reports `task`'s failure, if it has one that nothing saw: a link
    /// callback counted as its observer did not run (the thread exited
    /// first, or `unlink_all` cut it; see `Unobserved` in task.rs), no
    /// other callback ran with it, and no `join` is about to take it.
    ///
    /// Printed as [`ErrorPolicy::Report`] prints (and then aborting under
    /// [`ErrorPolicy::Abort`]), whatever the policy: this runs wherever the
    /// callback is dropped (its own greenlet, or thread teardown), not on
    /// the hub, so a [`ErrorPolicy::Custom`] function, which may count on
    /// running on the hub, is not called here.
    pub(crate) fn report_unobserved(&self, task: &Task) {
        let failure = task.failure.borrow();
        let Some(error) = failure.as_deref() else {
            return;
        };
        // A `join` waiting for the callbacks takes the failure next (not at
        // teardown: the joiner is being killed).
        if !self.closing.get() && !task.borrow_waiters.borrow().is_empty() {
            return;
        }
        // Once: several callbacks may go unrun, or one be added to the dead
        // greenlet after its failure was settled.
        if task.failure_settled.replace(true) {
            return;
        }
        self.print_failure(task, error, false);
    }

    /// [`report`](Self::report) for a greenlet that fails while the hub
    /// tears down (one that caught the teardown's kill, then panicked): no
    /// policy code runs then, since teardown can neither spawn nor wait
    /// for what a `Custom` policy might, so it is printed as
    /// [`report_unobserved`](Self::report_unobserved) prints. Under
    /// `IgnoreObserved` one with link callbacks is left to them: teardown
    /// drops them unrun just after, and the first reports it. Waiters do
    /// not count then: teardown kills them, so a `join` seldom returns it
    /// (one that catches the kill and joins again does, and it is printed
    /// as well).
    fn report_closing(&self, task: &Task) {
        let failure = task.failure.borrow();
        let Some(error) = failure.as_deref() else {
            return;
        };
        let observed = task.observers.get() > 0;
        if observed && matches!(*self.policy.borrow(), ErrorPolicy::IgnoreObserved) {
            return;
        }
        task.failure_settled.set(true);
        self.print_failure(task, error, observed);
    }

    /// Prints `task`'s failure as [`ErrorPolicy::Report`] does, then
    /// aborts under [`ErrorPolicy::Abort`]: for reports made where the
    /// policy's own code may not run.
    fn print_failure(&self, task: &Task, error: &Error, observed: bool) {
        let f = Failure {
            id: GreenletId(task.id),
            name: task.name.as_deref(),
            spawned_at: task.site,
            error,
            observed,
        };
        let abort = matches!(*self.policy.borrow(), ErrorPolicy::Abort);
        if abort {
            ErrorPolicy::Abort.handle(&f);
        } else {
            crate::error::print_report(&f);
        }
    }

    /// Cancels a greenlet that has not started: it never runs, dies as
    /// killed, and its links fire. A panic of the body's destructors (what
    /// its closure captured) is returned once the bookkeeping is done.
    #[must_use]
    pub(crate) fn cancel_unstarted(&self, task: &Task) -> Option<crate::Payload> {
        // Dropping the body runs user destructors, which may block and so run
        // the loop, which may reap this record: keep it alive meanwhile.
        let _hold = self.hold(task.key.get());
        let queued = task.core.state() == State::Scheduled;
        if let Some(t) = task.start_timer.take() {
            self.timers.borrow_mut().cancel(t);
        }
        if let Some(stack) = task.core.cancel_unstarted() {
            self.pool.borrow_mut().put(stack);
        }
        let body = task.body.take();
        if body.is_some() {
            self.pool.borrow_mut().unreserve();
        }
        // Links first: the body's destructors may block, and a link added
        // meanwhile (the greenlet reads as dead) must come after these.
        self.on_dead(task);
        let panic = body.and_then(|body| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: `_hold` keeps the record alive; its body was still
                // there (taken from the task just now).
                unsafe { body.cancel() }
            }))
            .err()
        });
        if !queued {
            // A queued task's key is still in the ring: the loop reaps it.
            self.reap(task.key.get(), task.id);
        }
        panic
    }
}
