//! The binary file format of saved models.
//!
//! A file is the 8-byte magic `RLMODEL1`, then the model name (u64 length + UTF-8), then the
//! model's fields in a fixed order, each one of: `u64`, `f64`, or an array (`u64` element count
//! followed by the little-endian `f32` or `u32` elements). Everything is little-endian. Files are
//! written to a temporary sibling and renamed, so a crash never leaves a half-written model.

use crate::error::{RecError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RLMODEL1";

/// Accumulates a model's fields, then writes them atomically.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Start a file for model `name`.
    pub fn new(name: &str) -> Writer {
        let mut w = Writer { buf: Vec::new() };
        w.buf.extend_from_slice(MAGIC);
        w.u64(name.len() as u64);
        w.buf.extend_from_slice(name.as_bytes());
        w
    }

    /// Append an unsigned integer.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Append a float.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Append an `f32` array.
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Append a `u32` array.
    pub fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Write to `path` through a temporary file and a rename.
    pub fn finish(self, path: &Path) -> Result<()> {
        let io = |source| RecError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = PathBuf::from(path);
        let mut name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".tmp");
        tmp.set_file_name(name);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

/// Reads back what a [`Writer`] wrote, failing with the file name on any mismatch.
pub struct Reader {
    path: PathBuf,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    /// Open `path` and check that it holds a model named `name`.
    pub fn open(path: &Path, name: &str) -> Result<Reader> {
        let buf = std::fs::read(path).map_err(|source| RecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut r = Reader {
            path: path.to_path_buf(),
            buf,
            pos: 0,
        };
        let magic = r.take(8)?;
        if magic != MAGIC {
            return Err(r.err("not a recloop model file (bad magic)".into()));
        }
        let len = r.u64()? as usize;
        let got = r.take(len)?.to_vec();
        if got != name.as_bytes() {
            return Err(r.err(format!(
                "holds model `{}`, expected `{name}`",
                String::from_utf8_lossy(&got)
            )));
        }
        Ok(r)
    }

    fn err(&self, reason: String) -> RecError {
        RecError::Model {
            model: self.path.display().to_string(),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!("truncated at byte {}", self.pos))),
        }
    }

    fn word<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Read an unsigned integer.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.word::<8>()?))
    }

    /// Read a float.
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.word::<8>()?))
    }

    fn array_len(&mut self) -> Result<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(4) > self.buf.len() - self.pos {
            return Err(self.err(format!("array of {n} elements runs past the end")));
        }
        Ok(n)
    }

    /// Read an `f32` array; every value must be finite.
    pub fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.array_len()?;
        let bytes = self.take(n * 4)?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.err(format!("non-finite value at element {i}")));
        }
        Ok(v)
    }

    /// Read a `u32` array.
    pub fn u32s(&mut self) -> Result<Vec<u32>> {
        let n = self.array_len()?;
        let bytes = self.take(n * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Fail unless the whole file was consumed.
    pub fn finish(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!(
                "{} unexpected trailing bytes",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }

    /// An error about this file's content.
    pub fn invalid(&self, reason: impl Into<String>) -> RecError {
        self.err(reason.into())
    }
}

/// Save the training interactions a model scores from.
pub fn write_interactions(w: &mut Writer, m: &crate::Interactions) {
    w.u64(m.n_users as u64);
    w.u64(m.n_items as u64);
    let indptr: Vec<u32> = m.indptr.iter().map(|&p| p as u32).collect();
    w.u32s(&indptr);
    w.u32s(&m.indices);
}

/// Read interactions written by [`write_interactions`], checking their structure.
pub fn read_interactions(r: &mut Reader) -> Result<crate::Interactions> {
    let n_users = r.u64()? as usize;
    let n_items = r.u64()? as usize;
    let indptr: Vec<usize> = r.u32s()?.into_iter().map(|p| p as usize).collect();
    let indices = r.u32s()?;
    let ok = indptr.len() == n_users + 1
        && indptr.first() == Some(&0)
        && indptr.last() == Some(&indices.len())
        && indptr.windows(2).all(|w| w[0] <= w[1])
        && indices.iter().all(|&i| (i as usize) < n_items);
    if !ok {
        return Err(r.invalid("malformed interaction matrix"));
    }
    Ok(crate::Interactions {
        n_users,
        n_items,
        indptr,
        indices,
    })
}
