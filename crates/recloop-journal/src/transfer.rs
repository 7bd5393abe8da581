//! The journal's transfer format: JSONL export and import (a header line, one event record per
//! line, then artifacts), for moving a journal between machines and backends.

use crate::artifact::ArtifactHash;
use crate::blocking::Journal;
use crate::error::{JournalError, Result};
use crate::event::{EVENT_SCHEMA_VERSION, EventRecord};
use crate::schema::SCHEMA_VERSION;
use crate::views::EventFilter;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// First line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always `recloop-journal`.
    pub format: String,
    /// Database schema version of the source.
    pub schema_version: i64,
    /// Event JSON version of the source.
    pub event_schema_version: u32,
    /// Events that follow.
    pub events: u64,
}

/// An artifact line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ArtifactLine {
    artifact: ArtifactHash,
    hex: String,
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// Events.
    pub events: u64,
    /// Artifacts.
    pub artifacts: u64,
}

impl Journal {
    /// Write the whole journal as JSONL: a header line, one [`EventRecord`] per line, then (with
    /// `with_artifacts`) one `{"artifact": HASH, "hex": BYTES}` line per artifact.
    pub fn export_jsonl<W: Write>(
        &self,
        mut out: W,
        with_artifacts: bool,
    ) -> Result<TransferSummary> {
        let count = self.event_count()?;
        let header = ExportHeader {
            format: "recloop-journal".into(),
            schema_version: SCHEMA_VERSION,
            event_schema_version: EVENT_SCHEMA_VERSION,
            events: count,
        };
        let io = |e: std::io::Error| JournalError::io("export output", e);
        let line = |v: &dyn erased::Json| v.to_line();
        writeln!(out, "{}", line(&header)?).map_err(io)?;
        let mut after = 0u64;
        let mut events = 0u64;
        loop {
            let page = self.events(&EventFilter {
                after_seq: Some(after),
                limit: Some(2000),
                ..EventFilter::default()
            })?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for rec in &page {
                writeln!(out, "{}", line(rec)?).map_err(io)?;
                events += 1;
            }
        }
        let mut artifacts = 0u64;
        if with_artifacts {
            for hash in self.run(|j| async move { j.artifacts().await })? {
                let bytes = self.get_artifact(&hash)?;
                let l = ArtifactLine {
                    artifact: hash,
                    hex: hex::encode(bytes),
                };
                writeln!(out, "{}", line(&l)?).map_err(io)?;
                artifacts += 1;
            }
        }
        out.flush().map_err(io)?;
        Ok(TransferSummary { events, artifacts })
    }

    /// Read a JSONL export into this journal, which must be empty. Every line is checked
    /// (format, gap-free sequence, checksums, parents) and the import is one transaction.
    pub fn import_jsonl<R: BufRead>(&self, input: R, source_name: &str) -> Result<TransferSummary> {
        let err = |line: usize, reason: String| JournalError::Import {
            source_name: source_name.to_string(),
            line,
            reason,
        };
        let mut records = Vec::new();
        let mut artifacts = Vec::new();
        let mut saw_header = false;
        for (i, line) in input.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| err(n, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            if !saw_header {
                let h: ExportHeader = serde_json::from_str(&line)
                    .map_err(|e| err(n, format!("expected the export header line ({e})")))?;
                if h.format != "recloop-journal" {
                    return Err(err(
                        n,
                        format!("format `{}` is not recloop-journal", h.format),
                    ));
                }
                if h.schema_version > SCHEMA_VERSION
                    || h.event_schema_version > EVENT_SCHEMA_VERSION
                {
                    return Err(JournalError::FutureSchema {
                        location: source_name.to_string(),
                        found: h.schema_version.max(i64::from(h.event_schema_version)),
                        supported: SCHEMA_VERSION,
                    });
                }
                saw_header = true;
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| err(n, format!("not JSON ({e})")))?;
            if value.get("artifact").is_some() {
                let a: ArtifactLine = serde_json::from_value(value)
                    .map_err(|e| err(n, format!("malformed artifact line ({e})")))?;
                let bytes = hex::decode(&a.hex)
                    .map_err(|e| err(n, format!("artifact bytes are not hex ({e})")))?;
                if ArtifactHash::of(&bytes) != a.artifact {
                    return Err(err(
                        n,
                        format!("artifact {} does not match its content", a.artifact),
                    ));
                }
                artifacts.push(bytes);
            } else {
                let rec: EventRecord = serde_json::from_value(value)
                    .map_err(|e| err(n, format!("malformed event record ({e})")))?;
                records.push((n, rec));
            }
        }
        if !saw_header {
            return Err(err(1, "empty input: no export header".into()));
        }
        for (i, (n, rec)) in records.iter().enumerate() {
            if rec.seq != i as u64 + 1 {
                return Err(err(
                    *n,
                    format!("expected event #{}, found #{}", i + 1, rec.seq),
                ));
            }
        }
        let n_art = artifacts.len() as u64;
        for bytes in artifacts {
            self.put_artifact(&bytes)?;
        }
        let records: Vec<EventRecord> = records.into_iter().map(|(_, r)| r).collect();
        let events = self.run(|j| async move { j.import_records(records).await })?;
        Ok(TransferSummary {
            events,
            artifacts: n_art,
        })
    }
}

mod erased {
    use crate::error::{JournalError, Result};

    /// Serialise anything to one JSON line (object-safe helper for the export writer).
    pub(super) trait Json {
        fn to_line(&self) -> Result<String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_line(&self) -> Result<String> {
            serde_json::to_string(self)
                .map_err(|e| JournalError::Internal(format!("cannot serialise export line: {e}")))
        }
    }
}
