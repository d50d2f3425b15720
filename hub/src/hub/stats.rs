//! What the hub can say about itself: counters (`sylvan::stats`) and the
//! list of live greenlets (`sylvan::dump`).

use super::*;

impl Hub {
    pub(crate) fn stats(&self) -> HubStats {
        let pool = self.pool.borrow().stats();
        // SAFETY: as in `task`; only states are read.
        let tasks = unsafe { &*self.tasks.get() };
        // A greenlet cancelled while queued keeps its entry until the loop
        // reaches it: counted by state, not by entries. Main excluded.
        let alive = tasks
            .iter()
            // SAFETY: the entry keeps its task alive.
            .filter(|(_, e)| !unsafe { e.task.as_ref() }.is_dead())
            .count()
            - 1;
        HubStats {
            alive,
            spawned: self.spawned.get(),
            switches: self.switches.get(),
            polls: self.polls.get(),
            timers: self.timers.borrow().len(),
            ready: self.ready_len(),
            thread_pool_queue: crate::threadpool::queued_jobs(),
            stacks_mapped: pool.mapped,
            stacks_unmapped: pool.unmapped,
            stacks_reused: pool.reused,
            stacks_pooled: pool.pooled,
        }
    }

    /// The live greenlets, main first.
    pub(crate) fn dump(&self) -> Dump {
        let now = Instant::now();
        // SAFETY: as in `task`; the entries are read without running any
        // user code.
        let tasks = unsafe { &*self.tasks.get() };
        let mut greenlets: Vec<GreenletInfo> = tasks
            .iter()
            // SAFETY: the entry keeps its task alive.
            .map(|(_, e)| unsafe { e.task.as_ref() })
            .filter(|t| !t.is_dead())
            .map(|t| {
                let state = match t.core.state() {
                    State::Created => "created",
                    State::Scheduled => "scheduled",
                    State::Running => "running",
                    State::Suspended => "suspended",
                    State::Dead => "dead",
                };
                let parked = t.core.state() == State::Suspended;
                let wait = if parked {
                    t.waiting.get()
                } else {
                    crate::task::WaitKind::Nothing
                };
                let peer = match wait {
                    crate::task::WaitKind::Io { fd, .. } => crate::inspect::peer_of(fd),
                    _ => None,
                };
                GreenletInfo {
                    id: GreenletId(t.id),
                    peer,
                    name: t.name.as_deref().map(str::to_owned),
                    state,
                    wait,
                    waiting_for: parked.then(|| {
                        let since = self.epoch + Duration::from_nanos(t.since.get());
                        now.saturating_duration_since(since)
                    }),
                    timeout_armed: t.timeouts.get() > 0,
                    spawned_at: t.site,
                    switches: t.switches.get(),
                }
            })
            .collect();
        greenlets.sort_by_key(|g| g.id);
        Dump { greenlets }
    }
}
