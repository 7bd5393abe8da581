//! Several `recloop run` processes on one PostgreSQL journal, each in its own clone of the
//! workspace (on one machine or several), working on one loop.
//!
//! Every shared step (the start, an iteration's brainstorm, merge and lessons, the final
//! comparison) and every candidate is done by the one worker that holds its lease
//! ([`recloop_journal::Leases`]); the others wait for its recorded result or, when the lease
//! expires because its holder died, take the step over and continue it from the journal (the
//! idempotency keys of resumption make every step's events appear once). Claims, expiries and
//! takeovers are journaled. Candidate commits and the production branch travel through the git
//! remote that `[workers] remote` names.

use crate::error::{AgentError, Result};
use crate::git::Repo;
use crate::record::Recorder;
use recloop_core::Manifest;
use recloop_journal::{Claim, Event, Journal, Leases};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn jerr(e: recloop_journal::JournalError) -> AgentError {
    AgentError::Journal(e.to_string())
}

/// This process's part in a loop shared through a PostgreSQL journal.
#[derive(Clone, Debug)]
pub struct Workers {
    /// The journal's leases.
    pub leases: Leases,
    /// This worker's id (`host:pid:nonce`).
    pub worker: String,
    /// How long a lease lasts unless renewed.
    pub ttl: Duration,
    /// Pause between checks while waiting.
    pub poll: Duration,
    /// The shared git remote, if any.
    pub remote: Option<String>,
}

/// A lease held by this worker, renewed by a background thread until dropped.
pub struct Held {
    /// The claim.
    pub claim: Claim,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Held {
    /// Whether a renewal found the lease gone (it expired and another worker took it).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

impl Workers {
    /// The workers of `journal` (a PostgreSQL journal), `None` for a SQLite journal.
    pub fn open(journal: &Journal, manifest: &Manifest) -> Result<Option<Workers>> {
        let Some(leases) = Leases::open(journal).map_err(jerr)? else {
            return Ok(None);
        };
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let w = &manifest.workers;
        Ok(Some(Workers {
            leases,
            worker: format!("{}:{}:{nonce:08x}", hostname(), std::process::id()),
            ttl: Duration::from_secs_f64(w.lease_ttl_s),
            poll: Duration::from_secs_f64(w.poll_s),
            remote: w.remote.clone(),
        }))
    }

    /// Journal a claim: `lease_acquired`, or `lease_expired` + `lease_taken_over`.
    pub fn record_claim(
        &self,
        rec: &Recorder,
        it: u32,
        step: &str,
        claim: &Claim,
        proposal_id: Option<&str>,
    ) -> Result<()> {
        let pid = proposal_id.map(str::to_string);
        match &claim.took_over {
            None => {
                rec.emit(
                    it,
                    &format!("lease/{step}/{}/acquired", claim.epoch),
                    Event::LeaseAcquired {
                        key: claim.key.clone(),
                        proposal_id: pid,
                        worker: self.worker.clone(),
                        epoch: claim.epoch,
                    },
                    None,
                )?;
            }
            Some(x) => {
                tracing::warn!(
                    "lease of {} held by {} expired at {}; {} takes it over",
                    claim.key,
                    x.worker,
                    x.expired_at,
                    self.worker
                );
                rec.emit(
                    it,
                    &format!("lease/{step}/{}/expired", x.epoch),
                    Event::LeaseExpired {
                        key: claim.key.clone(),
                        proposal_id: pid.clone(),
                        worker: x.worker.clone(),
                        epoch: x.epoch,
                        expired_at: x.expired_at.clone(),
                    },
                    None,
                )?;
                rec.emit(
                    it,
                    &format!("lease/{step}/{}/taken_over", claim.epoch),
                    Event::LeaseTakenOver {
                        key: claim.key.clone(),
                        proposal_id: pid,
                        worker: self.worker.clone(),
                        from_worker: x.worker.clone(),
                        epoch: claim.epoch,
                    },
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// Keep `claim` renewed (every third of the lease time) until the returned guard drops.
    pub fn hold(&self, claim: Claim) -> Held {
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let (leases, worker, ttl) = (self.leases.clone(), self.worker.clone(), self.ttl);
        let (s, l, c) = (stop.clone(), lost.clone(), claim.clone());
        let thread = std::thread::spawn(move || {
            let every = ttl / 3;
            let tick = Duration::from_millis(20).min(every);
            let mut since = Duration::ZERO;
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(tick);
                since += tick;
                if since < every {
                    continue;
                }
                since = Duration::ZERO;
                match leases.renew(&c, &worker, ttl) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("lost the lease of {} (it expired)", c.key);
                        l.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!("renewing the lease of {}: {e}", c.key),
                }
            }
        });
        Held {
            claim,
            stop,
            lost,
            thread: Some(thread),
        }
    }

    /// Run `f` once per (run, iteration, step) among all workers: the worker that claims the
    /// step's lease runs it and records its result; the others wait for that result, or take
    /// the step over when its holder's lease expires.
    pub fn step<T, F>(&self, rec: &Recorder, it: u32, step: &str, f: F) -> Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        if let Some(done) = rec.done(it, step)? {
            return Ok(done);
        }
        let key = rec.key(it, step);
        self.leases
            .enqueue(&key, std::slice::from_ref(&key))
            .map_err(jerr)?;
        loop {
            if let Some(done) = rec.done(it, step)? {
                return Ok(done);
            }
            let Some(claim) = self
                .leases
                .claim_next(&key, &self.worker, self.ttl)
                .map_err(jerr)?
            else {
                std::thread::sleep(self.poll);
                continue;
            };
            self.record_claim(rec, it, step, &claim, None)?;
            let held = self.hold(claim);
            if let Some(done) = rec.done(it, step)? {
                drop(held);
                self.leases.finish(&key).map_err(jerr)?;
                return Ok(done);
            }
            return match f() {
                Ok(v) => {
                    rec.complete(it, step, &v)?;
                    drop(held);
                    self.leases.finish(&key).map_err(jerr)?;
                    Ok(v)
                }
                Err(e) => {
                    let claim = held.claim.clone();
                    drop(held);
                    let _ = self.leases.release(&claim, &self.worker);
                    Err(e)
                }
            };
        }
    }

    /// Take the lock of the production branch (a lease shared by every run of this journal),
    /// waiting while another worker merges.
    pub fn lock_production(&self, rec: &Recorder, it: u32, branch: &str) -> Result<Held> {
        let key = format!("production:{branch}");
        self.leases
            .enqueue(&key, std::slice::from_ref(&key))
            .map_err(jerr)?;
        loop {
            if let Some(claim) = self
                .leases
                .claim_next(&key, &self.worker, self.ttl)
                .map_err(jerr)?
            {
                self.record_claim(rec, it, &format!("production/{branch}"), &claim, None)?;
                return Ok(self.hold(claim));
            }
            std::thread::sleep(self.poll);
        }
    }

    /// Give the production lock back.
    pub fn unlock_production(&self, held: Held) -> Result<()> {
        let claim = held.claim.clone();
        drop(held);
        self.leases.release(&claim, &self.worker).map_err(jerr)
    }

    /// Make `commit` available in this clone (fetched from the shared remote when missing).
    pub fn ensure_commit(&self, repo: &Repo, production: &str, commit: &str) -> Result<()> {
        if repo.has_commit(commit) {
            return Ok(());
        }
        let Some(remote) = &self.remote else {
            return Err(AgentError::Invalid {
                path: "recloop.toml".into(),
                reason: format!(
                    "commit {commit}, made by another worker, is not in this clone; set \
                     [workers] remote to a git remote every worker can push to and fetch from"
                ),
            });
        };
        repo.fetch_shared(remote, production)?;
        if repo.has_commit(commit) {
            Ok(())
        } else {
            Err(AgentError::Invalid {
                path: format!("[workers] remote {remote}"),
                reason: format!("commit {commit} is not on the shared remote"),
            })
        }
    }

    /// Fetch the shared remote and fast-forward the local production branch to the remote's;
    /// returns production's commit.
    pub fn sync_production(&self, repo: &Repo, production: &str) -> Result<String> {
        if let Some(remote) = &self.remote
            && let Some(head) = repo.fetch_shared(remote, production)?
        {
            repo.advance_branch(production, &head)?;
        }
        repo.rev(production)
    }

    /// Publish the local production branch on the shared remote.
    pub fn push_production(&self, repo: &Repo, production: &str) -> Result<()> {
        if let Some(remote) = &self.remote {
            let commit = repo.rev(production)?;
            crate::git::git(
                &repo.root,
                &[
                    "push",
                    "-q",
                    remote,
                    &format!("{commit}:refs/heads/{production}"),
                ],
            )?;
        }
        Ok(())
    }
}
