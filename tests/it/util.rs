//! Shared helpers.

use std::cell::RefCell;
use std::process::{Command, Output};
use std::rc::Rc;

/// Appends to a shared log, to check orderings.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    /// What was logged so far, leaving it in place.
    pub fn get(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// Keeps the greenlet failures a test provokes off stderr (this thread's
/// hub only).
pub fn quiet() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
}

/// Counts drops, to prove destructors ran.
pub struct DropFlag(pub Rc<std::cell::Cell<u32>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

pub const CHILD_ENV: &str = "SYLVAN_TEST_CHILD";

/// True in the re-executed child of `run_child(name)`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Re-runs this test binary with only the test `path` (exact), marked as
/// the child for `name`, and returns its output.
pub fn run_child(path: &str, name: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", path, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("re-exec the test binary")
}
