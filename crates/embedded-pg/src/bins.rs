//! Finding the PostgreSQL binaries already installed on this machine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// Where Debian/Ubuntu install each major version side by side.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
const SEARCH_ORDER: &str = "PG_BIN_DIR, pg_config --bindir, PATH or /usr/lib/postgresql/*/bin";

/// A usable bin dir and the major version of its `postgres`.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    pub dir: PathBuf,
    /// Major version as PG_VERSION spells it: "15", or "9.6" for old ones.
    pub version: String,
}

impl Bins {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `pg_isready` is in every server package we know of, but it is only a client tool: without
    /// it readiness falls back to the status line in `postmaster.pid`.
    pub fn pg_isready(&self) -> Option<PathBuf> {
        let p = self.tool("pg_isready");
        is_executable(&p).then_some(p)
    }
}

/// Resolves the bin dir. `data_version` (an existing cluster's PG_VERSION) steers the search to
/// the matching Debian version when the first candidate is a different major version.
pub(crate) fn find(explicit: Option<&Path>, data_version: Option<&str>) -> Result<Bins, Error> {
    if let Some(dir) = explicit {
        return probe(dir).ok_or_else(|| Error::NoBinaries {
            looked_in: format!("{} (the configured bin dir)", dir.display()),
        });
    }
    if let Some(env) = std::env::var_os("PG_BIN_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(env);
        // An explicit setting that is wrong is an error, not a reason to silently pick another.
        return probe(&dir).ok_or_else(|| Error::NoBinaries {
            looked_in: format!("PG_BIN_DIR={}", dir.display()),
        });
    }
    let found = from_pg_config()
        .or_else(from_path)
        .or_else(|| debian_dirs().into_iter().find_map(|d| probe(&d)))
        .ok_or_else(|| Error::NoBinaries {
            looked_in: SEARCH_ORDER.to_owned(),
        })?;
    if let Some(want) = data_version
        && want != found.version
        && let Some(matching) = probe(&Path::new(DEBIAN_ROOT).join(want).join("bin"))
    {
        return Ok(matching);
    }
    Ok(found)
}

/// `Some` when `dir` has executable `initdb` and `postgres` and `postgres -V` reports a version.
fn probe(dir: &Path) -> Option<Bins> {
    if !is_executable(&dir.join("initdb")) || !is_executable(&dir.join("postgres")) {
        return None;
    }
    let out = Command::new(dir.join("postgres"))
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = major_version(&String::from_utf8_lossy(&out.stdout))?;
    Some(Bins {
        dir: dir.to_path_buf(),
        version,
    })
}

/// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15"; "... 9.6.24" -> "9.6".
pub(crate) fn major_version(v_output: &str) -> Option<String> {
    let rest = v_output.split_once(')')?.1.trim_start();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = number.split('.').filter(|p| !p.is_empty());
    let first = parts.next()?;
    let major: u32 = first.parse().ok()?;
    if major >= 10 {
        Some(first.to_owned())
    } else {
        Some(format!("{first}.{}", parts.next()?))
    }
}

fn from_pg_config() -> Option<Bins> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    probe(Path::new(dir.trim()))
}

/// PATH may hold only symlinks (e.g. /usr/local/bin/postgres): resolve them so callers get the
/// real bin dir, which also has psql, pg_isready and pgbench.
fn from_path() -> Option<Bins> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let postgres = dir.join("postgres");
        if !is_executable(&postgres) {
            return None;
        }
        std::fs::canonicalize(&postgres)
            .ok()
            .and_then(|real| real.parent().and_then(probe))
            .or_else(|| probe(&dir))
    })
}

/// `/usr/lib/postgresql/<version>/bin`, highest version first.
fn debian_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(DEBIAN_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
