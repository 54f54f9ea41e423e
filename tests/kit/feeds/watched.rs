//! State a fake changes and a test awaits: a mutex, and a condition
//! variable notified on every change.

use std::fmt::Debug;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a wait lasts at most: generous, for a loaded machine.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Default)]
pub struct Watched<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T: Clone + Debug> Watched<T> {
    pub fn get(&self) -> T {
        self.lock().clone()
    }

    pub fn change<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        let result = change(&mut self.lock());
        self.changed.notify_all();
        result
    }

    /// Waits until `until` holds, and returns the state then; panics,
    /// naming `what`, when it does not soon.
    pub fn wait(&self, what: &str, until: impl Fn(&T) -> bool) -> T {
        let deadline = Instant::now() + WAIT;
        let mut state = self.lock();
        loop {
            if until(&state) {
                return state.clone();
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!("the fake did not see {what} within {WAIT:?}: {state:#?}");
            };
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap()
    }
}
