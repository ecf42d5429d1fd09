//! Thin, safe wrappers over the few libc calls this crate needs.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::Error;

/// The OS user PostgreSQL runs as when we are root (it refuses to run as root itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// `Some(postgres user)` when we are root, `None` when we can run PostgreSQL as ourselves.
pub(crate) fn run_as() -> Result<Option<RunAs>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user("postgres")
        .map_err(|source| Error::Io {
            action: "look up the OS user",
            path: "postgres".into(),
            source,
        })?
        .map(Some)
        .ok_or(Error::NoPostgresUser)
}

/// getpwnam_r, because getpwnam is not thread-safe and tests start clusters in parallel.
fn lookup_user(name: &str) -> io::Result<Option<RunAs>> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain old data; all-zero is a valid (if meaningless) value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, buf's length is passed with it.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(RunAs {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// True when a process with this pid exists (zombies count as dead: they no longer hold anything).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid_t <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid_t, 0) };
    let exists = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // /proc/<pid>/stat is "pid (comm) S ..."; the state follows the last ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => true,
    }
}

/// Whether the live process `pid` is a PostgreSQL server, so a pid recycled by an unrelated
/// program after a reboot is not mistaken for our postmaster. `None` when /proc can't tell.
pub(crate) fn is_postgres_process(pid: u32) -> Option<bool> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim();
    Some(comm == "postgres" || comm == "postmaster")
}

/// Sends `sig`; Ok(false) when the process is already gone.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> io::Result<bool> {
    let pid_t = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid_t, sig) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Makes `path` (a directory we own) traversable by `who`, adding only the execute bit it needs
/// (o+x, or g+x when `who` is in the directory's group), never read or write.
pub(crate) fn allow_traverse(path: &Path, who: RunAs) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    let mode = meta.mode() & 0o7777;
    let ok = if meta.uid() == who.uid {
        mode & 0o100 != 0
    } else if meta.gid() == who.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    };
    if ok {
        return Ok(());
    }
    let bit = if meta.gid() == who.gid { 0o010 } else { 0o001 };
    tracing::debug!(path = %path.display(), "adding execute permission so the postgres user can reach the cluster");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | bit))
}

/// Hands `path` to `who` when running as root, so PostgreSQL can write there.
pub(crate) fn chown_to(path: &Path, who: Option<RunAs>) -> io::Result<()> {
    match who {
        Some(w) => std::os::unix::fs::chown(path, Some(w.uid), Some(w.gid)),
        None => Ok(()),
    }
}
