//! The chained panic hook: panics on greenlet stacks are recorded for the
//! failure report instead of being printed with the OS thread's name.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::Once;

use crate::hub::try_hub;

/// Installs the hook once per process, in front of whatever hook was set.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(core) = try_hub().and_then(|hub| hub.running_greenlet_core()) {
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                let bt = Backtrace::capture();
                let bt = (bt.status() == BacktraceStatus::Captured).then(|| bt.to_string());
                core.record_panic_site(location, bt);
                return;
            }
            previous(info)
        }));
    });
}
