//! The "latest value" cell shared by sources whose reading is slow (a network round trip to
//! PTDaemon, a vendor command that takes a second): a background thread polls and stores the
//! newest value with its time; [`super::Sensor::read`] only copies it, so the meter's thread
//! never waits on the network or a process. One helper, used by `ptd` and `command`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The newest value and when it arrived, plus the stop signal of the thread that feeds it.
pub(super) struct Latest<T> {
    value: Mutex<(Instant, T)>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl<T: Send + 'static> Latest<T> {
    pub(super) fn new(value: T) -> Arc<Latest<T>> {
        Arc::new(Latest {
            value: Mutex::new((Instant::now(), value)),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    /// Replaces the value; its age restarts from zero.
    pub(super) fn set(&self, value: T) {
        *lock(&self.value) = (Instant::now(), value);
    }

    /// Calls `f` with the value's age and the value, under the lock (keep `f` short).
    pub(super) fn with<R>(&self, f: impl FnOnce(Duration, &T) -> R) -> R {
        let v = lock(&self.value);
        f(v.0.elapsed(), &v.1)
    }

    /// Tells the feeding thread to stop and wakes it from its wait.
    pub(super) fn stop(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }

    /// Waits `interval`, or less if stopped meanwhile; false once stopped.
    fn wait(&self, interval: Duration) -> bool {
        let stopped = lock(&self.stopped);
        let (stopped, _) =
            self.wake.wait_timeout_while(stopped, interval, |s| !*s).unwrap_or_else(PoisonError::into_inner);
        !*stopped
    }

    /// Starts a thread that calls `poll` every `interval` (after waiting the first one) and
    /// stores what it returns, until [`Latest::stop`].
    pub(super) fn spawn_poller(
        self: &Arc<Self>,
        name: &str,
        interval: Duration,
        mut poll: impl FnMut() -> T + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new().name(name.into()).spawn(move || {
            while me.wait(interval) {
                let v = poll();
                me.set(v);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poller_feeds_the_cell_until_stopped() {
        let cell = Latest::new(0u32);
        let mut n = 0;
        let t = cell
            .spawn_poller("test-poller", Duration::from_millis(5), move || {
                n += 1;
                n
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let seen = cell.with(|age, v| {
            assert!(age < Duration::from_millis(100), "{age:?}");
            *v
        });
        assert!(seen >= 3, "the poller ran only {seen} times in 100 ms");
        cell.stop();
        t.join().unwrap();
        let after = cell.with(|_, v| *v);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cell.with(|_, v| *v), after, "no polls after stop");
    }

    #[test]
    fn stop_wakes_a_long_wait_at_once() {
        let cell = Latest::new(());
        let t = cell.spawn_poller("test-poller", Duration::from_secs(3600), || ()).unwrap();
        let t0 = Instant::now();
        cell.stop();
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
