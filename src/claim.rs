//! An exclusive claim of an output path for the duration of a run: a lock file `PATH.lock`,
//! created only if it does not exist (atomically, also on NFS 3 and later), holding the host
//! and process id of its owner, removed when the claim is dropped. A second run on the same
//! path is refused before it does any work, instead of replacing or deleting the first run's
//! files. A claim left by a process that died (SIGKILL, a node crash) is taken over when its
//! owner is known to be gone: same host, no such process.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A held claim; dropping it releases the path.
#[derive(Debug)]
pub struct Claim {
    lock: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// The lock file of `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Claims `path`, or says why not (another run holds it, the directory is not writable).
pub fn take(path: &Path) -> Result<Claim, String> {
    let lock = lock_path(path);
    let me = format!("{} {}\n", host(), std::process::id());
    // Two attempts: the second after removing a claim whose owner is gone.
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut f) => {
                let claim = Claim { lock: lock.clone() };
                return f
                    .write_all(me.as_bytes())
                    .map(|()| claim)
                    .map_err(|e| format!("cannot be written: {e}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&lock).unwrap_or_default();
                let mut words = owner.split_whitespace();
                let (h, pid) = (words.next().unwrap_or("?"), words.next().unwrap_or("?"));
                let gone = h == host()
                    && pid.parse::<u32>().is_ok()
                    && !Path::new("/proc").join(pid).exists();
                if gone {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                return Err(format!(
                    "is claimed by another run (process {pid} on {h}, lock file {}); if no run \
                     is writing it, remove the lock file",
                    lock.display()
                ));
            }
            Err(e) => return Err(format!("cannot be written: {e}")),
        }
    }
    Err(format!(
        "cannot be claimed: lock file {} keeps reappearing",
        lock.display()
    ))
}

/// Whether `a` and `b` name the same file, however spelled (`./out.h5` and `out.h5`, a
/// symbolic link to the directory): their directories are resolved.
pub fn same_file(a: &Path, b: &Path) -> bool {
    fn resolved(p: &Path) -> PathBuf {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match (dir.canonicalize(), p.file_name()) {
            (Ok(d), Some(name)) => d.join(name),
            _ => p.to_path_buf(),
        }
    }
    if resolved(a) == resolved(b) {
        return true;
    }
    // Hard links and links to the file itself: the same inode.
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("lapicque-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out.h5");
        let first = take(&out).unwrap();
        let second = take(&dir.join(".").join("out.h5")).unwrap_err();
        assert!(second.contains("claimed by another run"), "{second}");
        drop(first);
        assert!(!lock_path(&out).exists());
        let again = take(&out).unwrap();
        drop(again);
        // A claim of a process that is gone (pid beyond the kernel's maximum) is taken over.
        std::fs::write(lock_path(&out), format!("{} 4194305\n", host())).unwrap();
        let taken = take(&out).unwrap();
        drop(taken);
        assert!(same_file(&out, &dir.join(".").join("out.h5")));
        assert!(!same_file(&out, &dir.join("other.h5")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
