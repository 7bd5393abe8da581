//! Content-addressed artifacts (diffs, logs, metrics files) referenced by events.
//!
//! With SQLite, artifacts are files beside the database: `.recloop/artifacts/ab/cdef…` (the first
//! two hex digits of the sha256 name the directory). A file is written to a temporary name, synced
//! and renamed, so a crash never leaves a partial artifact under its final name. With PostgreSQL,
//! artifacts live in the `artifacts` table of the same database (so a remote journal is complete
//! on its own).

use crate::error::{JournalError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The sha256 of an artifact's bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactHash(String);

impl ArtifactHash {
    /// Hash `bytes`.
    pub fn of(bytes: &[u8]) -> ArtifactHash {
        ArtifactHash(hex::encode(Sha256::digest(bytes)))
    }

    /// Parse a hex digest; errors name what is wrong.
    pub fn parse(s: &str) -> std::result::Result<ArtifactHash, String> {
        if s.len() != 64 {
            return Err(format!(
                "artifact hash `{s}` must be 64 hex digits, found {} characters",
                s.len()
            ));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("artifact hash `{s}` must be lowercase hexadecimal"));
        }
        Ok(ArtifactHash(s.to_string()))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ArtifactHash {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        ArtifactHash::parse(&s)
    }
}

impl From<ArtifactHash> for String {
    fn from(h: ArtifactHash) -> String {
        h.0
    }
}

/// A directory of content-addressed files.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactDir {
    root: PathBuf,
}

impl ArtifactDir {
    pub(crate) fn new(root: PathBuf) -> ArtifactDir {
        ArtifactDir { root }
    }

    fn path_of(&self, hash: &ArtifactHash) -> PathBuf {
        let (dir, rest) = hash.as_str().split_at(2);
        self.root.join(dir).join(rest)
    }

    /// Store `bytes` (no-op when already present) and return their hash.
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<ArtifactHash> {
        let hash = ArtifactHash::of(bytes);
        let path = self.path_of(&hash);
        if path.exists() {
            return Ok(hash);
        }
        let dir = path
            .parent()
            .ok_or_else(|| JournalError::Internal("artifact path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| JournalError::io(dir, e))?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(dir)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(JournalError::io(&path, e));
        }
        Ok(hash)
    }

    /// Read an artifact and check its hash.
    pub(crate) fn get(&self, hash: &ArtifactHash) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(hash);
        match std::fs::read(&path) {
            Ok(bytes) => {
                if ArtifactHash::of(&bytes) != *hash {
                    return Err(JournalError::Corrupt {
                        location: path.display().to_string(),
                        detail: "artifact content does not match its sha256 name".into(),
                    });
                }
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JournalError::io(path, e)),
        }
    }

    /// Every stored hash, sorted.
    pub(crate) fn list(&self) -> Result<Vec<ArtifactHash>> {
        let mut out = Vec::new();
        let top = match std::fs::read_dir(&self.root) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(JournalError::io(&self.root, e)),
        };
        for d in top {
            let d = d.map_err(|e| JournalError::io(&self.root, e))?;
            let prefix = d.file_name().to_string_lossy().to_string();
            if prefix.len() != 2 || !d.path().is_dir() {
                continue;
            }
            let inner = std::fs::read_dir(d.path()).map_err(|e| JournalError::io(d.path(), e))?;
            for f in inner {
                let f = f.map_err(|e| JournalError::io(d.path(), e))?;
                let name = f.file_name().to_string_lossy().to_string();
                if let Ok(h) = ArtifactHash::parse(&format!("{prefix}{name}")) {
                    out.push(h);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_round_trip_and_detect_tampering() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactDir::new(tmp.path().join("artifacts"));
        let h = store.put(b"diff --git a b").unwrap();
        assert_eq!(h, store.put(b"diff --git a b").unwrap());
        assert_eq!(store.get(&h).unwrap().unwrap(), b"diff --git a b");
        assert_eq!(store.list().unwrap(), vec![h.clone()]);
        let path = store.path_of(&h);
        assert!(path.starts_with(tmp.path().join("artifacts").join(&h.as_str()[..2])));
        std::fs::write(&path, b"tampered").unwrap();
        assert!(matches!(store.get(&h), Err(JournalError::Corrupt { .. })));
        let missing = ArtifactHash::of(b"nothing");
        assert!(store.get(&missing).unwrap().is_none());
    }

    #[test]
    fn parse_rejects_bad_hashes() {
        assert!(
            ArtifactHash::parse("abc")
                .unwrap_err()
                .contains("64 hex digits")
        );
        let upper = "A".repeat(64);
        assert!(
            ArtifactHash::parse(&upper)
                .unwrap_err()
                .contains("lowercase")
        );
        assert!(serde_json::from_str::<ArtifactHash>("\"xyz\"").is_err());
    }
}
