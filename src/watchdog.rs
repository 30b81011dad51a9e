//! The last line of defence against waiting forever: a rank that enters a state in which it
//! may wait for a peer that never comes (closing a file after a failed write, leaving MPI after
//! an error) arms a watchdog, which ends the process after a grace period unless it is
//! disarmed first. Open MPI then ends the whole job.

use std::sync::mpsc;
use std::time::Duration;

/// How long a guarded state may last \[s\].
pub const GRACE_S: u64 = 10;

/// Disarms the watchdog when dropped.
pub struct Guard {
    _disarm: mpsc::Sender<()>,
}

/// Ends the process with exit code `code` if the returned guard lives longer than
/// [`GRACE_S`] seconds.
pub fn arm(code: u8) -> Guard {
    arm_for(Duration::from_secs(GRACE_S), code)
}

/// As [`arm`], with grace period `grace`.
pub fn arm_for(grace: Duration, code: u8) -> Guard {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        // A message never comes: the guard's sender is dropped (disarmed) or the time is up.
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(grace) {
            // SAFETY: `_exit` ends the process at once, without running any of its code;
            // nothing here is left half-done that another exit path would complete.
            unsafe { libc::_exit(i32::from(code)) }
        }
    });
    Guard { _disarm: tx }
}
