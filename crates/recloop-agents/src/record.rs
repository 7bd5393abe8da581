//! Journal access for the loop: every step appends its events with an idempotency key
//! (`RUN/ITERATION/STEP/...`) and a uuid derived from that key, so a re-executed step after a crash
//! appends nothing twice and a resumed run ends with the same journal as an uninterrupted one.

use crate::error::{AgentError, Result};
use recloop_journal::{Event, EventFilter, EventId, EventRecord, Journal, NewEvent};
use sha2::{Digest, Sha256};

/// A journal handle scoped to one run.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// The journal.
    pub journal: Journal,
    /// The run.
    pub run_id: String,
}

/// A deterministic uuid (v4 layout) from an idempotency key.
pub fn uuid_for(key: &str) -> uuid::Uuid {
    let d = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

fn jerr(e: recloop_journal::JournalError) -> AgentError {
    AgentError::Journal(e.to_string())
}

impl Recorder {
    /// Scope `journal` to `run_id`.
    pub fn new(journal: Journal, run_id: &str) -> Recorder {
        Recorder {
            journal,
            run_id: run_id.to_string(),
        }
    }

    /// The full key of a step.
    pub fn key(&self, iteration: u32, step: &str) -> String {
        format!("{}/{iteration}/{step}", self.run_id)
    }

    /// Append `event` under `step` (idempotent: the same key returns the first event's id).
    pub fn emit(
        &self,
        iteration: u32,
        step: &str,
        event: Event,
        parent: Option<EventId>,
    ) -> Result<EventId> {
        let key = self.key(iteration, step);
        let mut e = NewEvent::new(self.run_id.clone(), iteration, event)
            .key(key.clone())
            .with_id(uuid_for(&key));
        if let Some(p) = parent {
            e = e.caused_by(p);
        }
        self.journal.append(e).map_err(jerr)
    }

    /// Journal what a stage call spent on language models, one `budget_spent` event per agent
    /// role and model under `step` (`brainstorm/spend`, `develop/ID/spend/ROUND`); `log` is
    /// emptied.
    pub fn spend(&self, iteration: u32, step: &str, log: &crate::brain::SpendLog) -> Result<()> {
        for s in log.take() {
            self.emit(
                iteration,
                &format!("{step}/{}/{}", s.agent, s.model),
                Event::BudgetSpent {
                    agent: s.agent,
                    model: s.model,
                    calls: s.calls,
                    tokens_in: s.tokens_in,
                    tokens_out: s.tokens_out,
                    usd: s.usd,
                    price_table_version: s.price_table_version,
                },
                None,
            )?;
        }
        Ok(())
    }

    /// Store an artifact (diff, log) and return its hash.
    pub fn artifact(&self, bytes: &[u8]) -> Result<recloop_journal::ArtifactHash> {
        self.journal.put_artifact(bytes).map_err(jerr)
    }

    /// The recorded result of a completed step, if any (a `note` with topic `step`).
    pub fn done<T: serde::de::DeserializeOwned>(
        &self,
        iteration: u32,
        step: &str,
    ) -> Result<Option<T>> {
        let key = self.key(iteration, &format!("{step}/done"));
        match self.journal.find_by_key(&key).map_err(jerr)? {
            Some(EventRecord {
                event: Event::Note { data, .. },
                ..
            }) => serde_json::from_value(data).map(Some).map_err(|e| {
                AgentError::Journal(format!("{key}: recorded step result unreadable: {e}"))
            }),
            _ => Ok(None),
        }
    }

    /// Record that `step` completed with `result` (what a resumed run reuses instead of redoing it).
    pub fn complete<T: serde::Serialize>(
        &self,
        iteration: u32,
        step: &str,
        result: &T,
    ) -> Result<EventId> {
        let data = serde_json::to_value(result)
            .map_err(|e| AgentError::Journal(format!("cannot serialise step result: {e}")))?;
        self.emit(
            iteration,
            &format!("{step}/done"),
            Event::Note {
                topic: "step".into(),
                text: step.to_string(),
                data,
            },
            None,
        )
    }

    /// Run `f` once per (run, iteration, step): a completed step's recorded result is returned
    /// without running it again.
    pub fn step<T, F>(&self, iteration: u32, step: &str, f: F) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        if let Some(done) = self.done(iteration, step)? {
            return Ok(done);
        }
        let v = f()?;
        self.complete(iteration, step, &v)?;
        Ok(v)
    }

    /// Every event of the journal (all runs), oldest first.
    pub fn all_events(&self) -> Result<Vec<EventRecord>> {
        self.journal.events(&EventFilter::default()).map_err(jerr)
    }
}
