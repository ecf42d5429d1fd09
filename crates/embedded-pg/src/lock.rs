//! One wagate per data directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// Exclusive lock on a data directory: `flock` on `<dir>/wagate.lock`, which holds our pid.
///
/// flock (not a pid file alone) because the kernel drops it when the process dies, however it
/// dies, so a crash never leaves a stale lock behind. The file is never deleted: deleting a
/// flock'd file lets a second process lock a fresh inode while the first still holds the old one.
#[derive(Debug)]
pub struct DataDirLock {
    // Held only for its open file description: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it, or fails with [`Error::Busy`] naming the holder's pid.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, Error> {
        let io_err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io_err("create the data directory", dir))?;
        let path = dir.join("wagate.lock");
        // std opens with O_CLOEXEC, so a PostgreSQL we spawn does not inherit (and keep) the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io_err("open the lock file", &path))?;
        loop {
            // SAFETY: the fd is owned by `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    let mut text = String::new();
                    let pid = file
                        .read_to_string(&mut text)
                        .ok()
                        .and_then(|_| text.trim().parse().ok());
                    return Err(Error::Busy {
                        dir: dir.to_path_buf(),
                        pid,
                    });
                }
                _ => return Err(io_err("lock", &path)(err)),
            }
        }
        let write_pid = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()
        };
        write_pid(&mut file).map_err(io_err("write our pid to", &path))?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file, `<dir>/wagate.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
