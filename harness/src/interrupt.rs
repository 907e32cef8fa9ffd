//! SIGINT and SIGTERM during a run (issue 11): the children effbench started in their own
//! process groups (a runner, a `--power-command`) are stopped, the work directories effbench
//! made are removed, and effbench exits 130 (SIGINT) or 143 (SIGTERM). Finished repeats are
//! already in the result files (they are written after every repeat); the repeat in progress
//! is lost.
//!
//! Why a watcher thread and not cooperative cancellation: a repeat's work (a training loop in
//! `effbench-models`, a wait on a runner) has no cancellation points, and an interrupt should
//! not wait for a repeat to end. The signal handler only records the signal and writes one
//! byte to a pipe (both async-signal-safe); a thread blocked on that pipe does the rest.
//!
//! What the watcher must not tear: an atomic write in progress (it would leave a hidden temp
//! file). Writers hold [`writes`] (a shared guard) for the duration; the watcher takes the lock
//! exclusively before it exits, so no write is half done and none starts after.
//!
//! Everything here is process-global: a process has one set of signal dispositions.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// How long stopped process groups get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

static INSTALL: Once = Once::new();
static PIPE_WRITE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static WRITES: RwLock<()> = RwLock::new(());

/// Ends the process as an interrupt by `signal` ends it ([`Exit::Interrupted`]: 130 for
/// SIGINT, 143 for SIGTERM).
fn exit(signal: i32) -> ! {
    std::process::exit(i32::from(crate::error::Exit::Interrupted(signal).code()))
}

/// Installs the SIGINT and SIGTERM handlers and starts the watcher thread (once per process;
/// later calls do nothing). Fails only when the pipe, the thread or `sigaction` cannot be
/// had; the caller should then refuse to run rather than leave children behind on a signal.
pub fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_once());
    result
}

fn install_once() -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two descriptors of the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read, write) = (fds[0], fds[1]);
    // The handler must never block: a full pipe just drops the byte (one is enough).
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(write, libc::F_SETFL, libc::fcntl(write, libc::F_GETFL) | libc::O_NONBLOCK) };
    PIPE_WRITE.store(write, std::sync::atomic::Ordering::SeqCst);
    std::thread::Builder::new().name("effbench-signals".into()).spawn(move || watch(read))?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only does async-signal-safe work.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only the first signal counts; a second Ctrl-C during the cleanup changes nothing.
    let _ = SIGNAL.compare_exchange(0, sig, std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst);
    let fd = PIPE_WRITE.load(std::sync::atomic::Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one byte on the stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

fn watch(read: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into a local.
        let n = unsafe { libc::read(read, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return; // the pipe is gone: nothing more will come
    }
    let sig = SIGNAL.load(std::sync::atomic::Ordering::SeqCst);
    let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
    eprintln!(
        "\neffbench: {name}: stopping the run (runners and power commands are stopped, work directories \
         removed); finished repeats stay in the result files"
    );
    // No atomic write in progress, and none after this.
    let _writes = WRITES.write().unwrap_or_else(PoisonError::into_inner);
    stop_groups(&lock(&GROUPS).clone());
    for p in lock(&PATHS).iter() {
        let _ = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
    }
    exit(sig);
}

/// SIGTERM to every group, SIGKILL after [`GRACE`] to those still there.
fn stop_groups(groups: &[u32]) {
    let signal = |g: u32, s: libc::c_int| {
        if let Ok(g) = libc::pid_t::try_from(g) {
            // SAFETY: kill(2) on a process group we started.
            unsafe { libc::kill(-g, s) };
        }
    };
    let alive = |g: u32| {
        let Ok(g) = libc::pid_t::try_from(g) else { return false };
        // The leader is our child: reap it, or it stays in the group as a zombie.
        // SAFETY: waitpid with WNOHANG on a pid we spawned; a null status pointer is allowed.
        unsafe { libc::waitpid(g, std::ptr::null_mut(), libc::WNOHANG) };
        // SAFETY: signal 0 only checks that some process of the group exists.
        unsafe { libc::kill(-g, 0) == 0 }
    };
    for &g in groups {
        signal(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for &g in groups.iter().filter(|&&g| alive(g)) {
        signal(g, libc::SIGKILL);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// After SIGINT/SIGTERM, the main thread must not end the process on its own: the stopped
/// runner makes the run fail (exit 2, a misleading "runner closed stdout") while the watcher is
/// still cleaning up. Called before `main` returns: when a signal came, this waits for the
/// watcher to exit the process with 130/143 (and exits itself if the watcher never does).
pub fn wait_if_interrupted() {
    let sig = SIGNAL.load(std::sync::atomic::Ordering::SeqCst);
    if sig == 0 {
        return;
    }
    std::thread::sleep(GRACE * 10);
    exit(sig);
}

/// Registers a child's process group (the child was spawned with `process_group(0)`, so its
/// pid is the group id) to be stopped on an interrupt. Call [`untrack_group`] once the child
/// is reaped, so a reused pid is never signalled.
pub fn track_group(pgid: u32) {
    lock(&GROUPS).push(pgid);
}

pub fn untrack_group(pgid: u32) {
    let mut g = lock(&GROUPS);
    if let Some(i) = g.iter().position(|&x| x == pgid) {
        g.swap_remove(i);
    }
}

/// A file or directory removed on an interrupt while this guard lives (its owner removes it
/// on the normal paths).
pub struct TrackedPath(PathBuf);

pub fn track_path(path: &Path) -> TrackedPath {
    lock(&PATHS).push(path.to_path_buf());
    TrackedPath(path.to_path_buf())
}

impl Drop for TrackedPath {
    fn drop(&mut self) {
        let mut p = lock(&PATHS);
        if let Some(i) = p.iter().position(|x| *x == self.0) {
            p.swap_remove(i);
        }
    }
}

/// Held by an atomic write (temp file + rename) while it runs: an interrupt waits for it.
pub fn writes() -> RwLockReadGuard<'static, ()> {
    WRITES.read().unwrap_or_else(PoisonError::into_inner)
}
