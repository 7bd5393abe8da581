//! The external platform: a team's own A/B system, driven through the commands its manifest
//! declares (`[online.external]`: start, traffic, stop) and judged from its exposure and event
//! logs (a Parquet/CSV directory or PostgreSQL). The ramp, the health gate, the harm veto and
//! the verdict are the same plain code as with the simulator ([`run_with_adapter`]).
//!
//! An experiment day is `day_seconds` of wall-clock time from the experiment's start; day `d` is
//! read once `(d + 1) · day_seconds + settle_seconds` have passed. Each experiment's start time,
//! current share and stop are kept in `.recloop/external/<experiment>.json`, so a `recloop run`
//! that was stopped (even by `kill -9`) resumes the experiment where the platform left it: it
//! does not start it again, replays the days that have passed from the logs (the same reads give
//! the same decisions, which the journal already holds under the same step keys) and waits only
//! for the days still to come.

use crate::adapter::{Adapter, DayReport};
use crate::error::{OnlineError, Result};
use crate::experiment::{Ack, ExperimentEvent, ExperimentReport, ExperimentSettings, Outcome};
use crate::log_source::LogSource;
use crate::logs_adapter::sim_log_metrics;
use crate::platform::{OnlinePlatform, PlatformError};
use crate::run_with_adapter;
use recloop_core::{ExternalSection, LogMetricSpec, Manifest};
use recloop_logs::MetricDef;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where experiment states live, relative to the workspace.
pub const STATE_DIR: &str = ".recloop/external";

/// What recloop remembers of an experiment on the external platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalExperiment {
    /// Experiment id (the platform's key, `RECLOOP_EXPERIMENT`).
    pub id: String,
    /// When `start` returned, seconds since the Unix epoch: day 0 begins here.
    pub started_at: f64,
    /// The candidate's commit.
    pub candidate_commit: String,
    /// The traffic share last set (0 until the first `traffic`).
    pub share: f64,
    /// Set once `stop` returned: the outcome it was told and the last day read.
    pub stopped: Option<Stopped>,
    /// A command written down before it ran and cleared once it returned. Still set after a
    /// `kill -9`: the command may or may not have taken effect, so a resumed run issues it
    /// again (the commands must be idempotent per experiment id).
    #[serde(default)]
    pub pending: Option<PendingCommand>,
}

/// A platform command recloop had started but not seen return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCommand {
    /// `start`, `traffic` or `stop`.
    pub key: String,
    /// The share `traffic` was setting.
    pub share: Option<f64>,
}

/// How an experiment was stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    /// `completed`, `rolled_back`, `held` or `aborted`.
    pub outcome: String,
    /// Days read when it stopped.
    pub days: u32,
}

/// The team's own platform behind [`OnlinePlatform`].
pub struct ExternalPlatform {
    workspace: PathBuf,
    config: ExternalSection,
    source: LogSource,
    metrics: Vec<MetricDef>,
}

impl ExternalPlatform {
    /// The platform of the workspace at `workspace`, as `[online.external]` and
    /// `[[online.metrics]]` declare it.
    pub fn new(workspace: &Path, manifest: &Manifest) -> Result<ExternalPlatform> {
        let config = manifest
            .online
            .external
            .clone()
            .ok_or_else(|| OnlineError::Config {
                field: "online.external".into(),
                reason: "platform \"external\" needs an [online.external] table".into(),
            })?;
        let source = LogSource::parse(&config.logs, workspace, &config.exposures, &config.events);
        Ok(ExternalPlatform {
            workspace: workspace.to_path_buf(),
            source,
            metrics: log_metrics(&manifest.online.metrics)?,
            config,
        })
    }

    /// The state file of experiment `id`.
    pub fn state_path(&self, id: &str) -> PathBuf {
        self.workspace.join(STATE_DIR).join(format!("{id}.json"))
    }

    /// The recorded state of experiment `id`, if it was started.
    pub fn state(
        &self,
        id: &str,
    ) -> std::result::Result<Option<ExternalExperiment>, PlatformError> {
        let path = self.state_path(id);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                PlatformError::Other(format!("{}: not an experiment state: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PlatformError::Other(format!("{}: {e}", path.display()))),
        }
    }

    fn save(&self, state: &ExternalExperiment) -> std::result::Result<(), PlatformError> {
        let path = self.state_path(&state.id);
        let fail = |e: std::io::Error| PlatformError::Other(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| PlatformError::Other(format!("experiment state: {e}")))?;
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)
    }

    /// Run one of the declared commands in the workspace, with the experiment's variables.
    fn command(
        &self,
        key: &'static str,
        env: &[(&str, String)],
    ) -> std::result::Result<String, PlatformError> {
        let line = match key {
            "start" => &self.config.start,
            "traffic" => &self.config.traffic,
            _ => &self.config.stop,
        };
        run_command(
            &self.workspace,
            line,
            env,
            Duration::from_secs(self.config.command_timeout_s),
        )
        .map_err(|detail| PlatformError::Command {
            key,
            command: line.clone(),
            detail,
        })
    }

    /// The experiment's state: recorded, or started now with the `start` command.
    fn start_or_resume(
        &self,
        id: &str,
        env: &[(&str, String)],
        candidate_commit: &str,
    ) -> std::result::Result<ExternalExperiment, PlatformError> {
        if let Some(mut state) = self.state(id)? {
            if state.candidate_commit != candidate_commit {
                return Err(PlatformError::Other(format!(
                    "experiment {id} was started for commit {} but the candidate is now {candidate_commit}; \
                     remove {} to start it again",
                    state.candidate_commit,
                    self.state_path(id).display()
                )));
            }
            if state.pending.as_ref().is_some_and(|p| p.key == "start") {
                // killed while `start` ran: it may not have taken effect
                eprintln!("experiment {id}: a killed run was starting it; issuing `start` again");
                self.command("start", env)?;
                state.started_at = now();
                state.pending = None;
                self.save(&state)?;
            }
            return Ok(state);
        }
        let mut state = ExternalExperiment {
            id: id.to_string(),
            started_at: now(),
            candidate_commit: candidate_commit.to_string(),
            share: 0.0,
            stopped: None,
            pending: Some(PendingCommand {
                key: "start".into(),
                share: None,
            }),
        };
        self.save(&state)?;
        self.command("start", env)?;
        state.started_at = now();
        state.pending = None;
        self.save(&state)?;
        Ok(state)
    }
}

impl OnlinePlatform for ExternalPlatform {
    fn name(&self) -> String {
        "external".into()
    }

    fn run(
        &self,
        manifest: &Manifest,
        control: &Path,
        treatment: &Path,
        settings: &ExperimentSettings,
        observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    ) -> std::result::Result<ExperimentReport, PlatformError> {
        let candidate_commit = head_commit(treatment).map_err(|d| PlatformError::Pipeline {
            side: "candidate",
            detail: d,
        })?;
        let control_commit = head_commit(control).map_err(|d| PlatformError::Pipeline {
            side: "control",
            detail: d,
        })?;
        let env = vec![
            ("RECLOOP_EXPERIMENT", settings.id.clone()),
            ("RECLOOP_CANDIDATE_COMMIT", candidate_commit.clone()),
            ("RECLOOP_CANDIDATE_DIR", treatment.display().to_string()),
            ("RECLOOP_CONTROL_COMMIT", control_commit),
            ("RECLOOP_CONTROL_DIR", control.display().to_string()),
        ];
        let state = self.start_or_resume(&settings.id, &env, &candidate_commit)?;
        let mut adapter = ExternalAdapter {
            platform: self,
            state,
            env,
        };
        let result = run_with_adapter(manifest, &mut adapter, settings, observer);
        if adapter.state.stopped.is_none() {
            let outcome = match &result {
                Ok(r) => match r.outcome {
                    Outcome::Completed => "completed",
                    Outcome::RolledBack { .. } => "rolled_back",
                    Outcome::Held { .. } => "held",
                },
                Err(_) => "aborted",
            };
            adapter.stop(outcome, result.as_ref().map_or(0, |r| r.days))?;
        }
        Ok(result?)
    }
}

/// One experiment's days, read from the logs after waiting for them.
struct ExternalAdapter<'p> {
    platform: &'p ExternalPlatform,
    state: ExternalExperiment,
    env: Vec<(&'static str, String)>,
}

impl ExternalAdapter<'_> {
    fn env_with(&self, name: &'static str, value: String) -> Vec<(&'static str, String)> {
        let mut env = self.env.clone();
        env.push((name, value));
        env
    }

    fn stop(&mut self, outcome: &str, days: u32) -> std::result::Result<(), PlatformError> {
        let env = self.env_with("RECLOOP_OUTCOME", outcome.to_string());
        self.state.pending = Some(PendingCommand {
            key: "stop".into(),
            share: None,
        });
        self.platform.save(&self.state)?;
        self.platform.command("stop", &env)?;
        self.state.stopped = Some(Stopped {
            outcome: outcome.to_string(),
            days,
        });
        self.state.pending = None;
        self.platform.save(&self.state)
    }

    fn platform_error(e: PlatformError) -> OnlineError {
        OnlineError::Platform(e.to_string())
    }
}

impl Adapter for ExternalAdapter<'_> {
    fn name(&self) -> &str {
        "external"
    }

    fn metrics(&self) -> Vec<String> {
        self.platform
            .metrics
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    fn days_available(&self) -> Option<u32> {
        // a stopped experiment gets no new data: a resumed run replays the days it had
        self.state.stopped.as_ref().map(|s| s.days.max(1))
    }

    fn run_day(&mut self, day: u32, share: f64) -> Result<DayReport> {
        let x = &self.platform.config;
        let due = self.state.started_at + f64::from(day + 1) * x.day_seconds + x.settle_seconds;
        // traffic changes only on a day still to come: a resumed run replays the days that have
        // passed without touching the live share
        let live = due > now();
        // a `traffic` a killed run had begun is issued again: it may not have taken effect
        let interrupted = self
            .state
            .pending
            .as_ref()
            .is_some_and(|p| p.key == "traffic" && p.share == Some(share));
        if live && self.state.stopped.is_none() && (share != self.state.share || interrupted) {
            if interrupted {
                eprintln!(
                    "experiment {}: a killed run was setting its share to {share}; issuing `traffic` again",
                    self.state.id
                );
            }
            self.state.pending = Some(PendingCommand {
                key: "traffic".into(),
                share: Some(share),
            });
            self.platform
                .save(&self.state)
                .map_err(Self::platform_error)?;
            let env = self.env_with("RECLOOP_SHARE", share.to_string());
            self.platform
                .command("traffic", &env)
                .map_err(Self::platform_error)?;
            self.state.share = share;
            self.state.pending = None;
            self.platform
                .save(&self.state)
                .map_err(Self::platform_error)?;
        }
        let wait = due - now();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        self.platform
            .source
            .day_report(&self.state.id, day, &self.platform.metrics)
    }
}

/// The metrics `[[online.metrics]]` declares, or the simulator's log metrics when it declares
/// none.
pub fn log_metrics(specs: &[LogMetricSpec]) -> Result<Vec<MetricDef>> {
    if specs.is_empty() {
        return Ok(sim_log_metrics());
    }
    specs
        .iter()
        .map(|s| match (s.kind.as_str(), &s.denominator) {
            ("mean", None) => Ok(MetricDef::Mean {
                name: s.name.clone(),
                event: s.event.clone(),
            }),
            ("proportion", None) => Ok(MetricDef::Proportion {
                name: s.name.clone(),
                event: s.event.clone(),
            }),
            ("ratio", Some(d)) => Ok(MetricDef::ratio(&s.name, &s.event, d)),
            _ => Err(OnlineError::Config {
                field: format!("online.metrics `{}`", s.name),
                reason: format!(
                    "kind {:?} with denominator {:?} is not a mean, proportion or ratio",
                    s.kind, s.denominator
                ),
            }),
        })
        .collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `git rev-parse HEAD` in `dir`.
fn head_commit(dir: &Path) -> std::result::Result<String, String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("git rev-parse HEAD in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "git rev-parse HEAD in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run `line` with `sh -c` in `dir`, inheriting the environment (platform commands need the
/// team's credentials) plus `env`; its stdout on success, else why it failed with the tail of
/// its output. Killed at `timeout`.
fn run_command(
    dir: &Path,
    line: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> std::result::Result<String, String> {
    let mut child = Command::new("/bin/sh")
        .args(["-c", line])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "killed after its time limit of {} s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if status.success() {
        return Ok(out);
    }
    let tail: Vec<&str> = err.lines().rev().take(6).collect::<Vec<_>>();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "exited with {}: {}",
        status
            .code()
            .map_or("a signal".to_string(), |c| format!("status {c}")),
        tail.join(" | ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_inherit_the_environment_and_report_failures_with_their_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_command(
            dir.path(),
            "echo \"$RECLOOP_SHARE $HOME\"",
            &[("RECLOOP_SHARE", "0.05".into())],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            out.trim(),
            format!("0.05 {}", std::env::var("HOME").unwrap_or_default())
        );
        let err = run_command(
            dir.path(),
            "echo nope >&2; exit 3",
            &[],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(err, "exited with status 3: nope");
        let err = run_command(dir.path(), "sleep 5", &[], Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("time limit"), "{err}");
    }

    fn platform(dir: &Path) -> ExternalPlatform {
        let text = "[project]\nname='x'\neditable=['a']\n[metrics]\nprimary={name='m',direction='increase'}\n\
            [online]\nplatform = \"external\"\n[online.external]\n\
            start = \"echo start $RECLOOP_EXPERIMENT >> calls\"\n\
            traffic = \"echo traffic $RECLOOP_EXPERIMENT $RECLOOP_SHARE >> calls\"\n\
            stop = \"echo stop $RECLOOP_EXPERIMENT >> calls\"\nlogs = \"logs\"\nday_seconds = 1\n";
        let manifest = Manifest::parse(text, Path::new("recloop.toml")).unwrap();
        ExternalPlatform::new(dir, &manifest).unwrap()
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_command_a_kill_interrupted_is_issued_again_and_a_finished_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = platform(dir.path());
        let env = vec![("RECLOOP_EXPERIMENT", "x1".to_string())];
        let state = p.start_or_resume("x1", &env, "abc").unwrap();
        assert_eq!(state.pending, None);
        // resuming a started experiment does not start it again
        p.start_or_resume("x1", &env, "abc").unwrap();
        assert_eq!(calls(dir.path()), ["start x1"]);
        // a kill while `start` ran leaves it pending: the next run starts it again
        let mut killed = state.clone();
        killed.pending = Some(PendingCommand {
            key: "start".into(),
            share: None,
        });
        p.save(&killed).unwrap();
        let resumed = p.start_or_resume("x1", &env, "abc").unwrap();
        assert_eq!(resumed.pending, None);
        assert_eq!(calls(dir.path()), ["start x1", "start x1"]);

        // a kill while `traffic 0.5` ran: the share recorded is the old one, the 0.5 pending
        let mut killed = resumed.clone();
        killed.share = 0.05;
        killed.pending = Some(PendingCommand {
            key: "traffic".into(),
            share: Some(0.5),
        });
        let mut adapter = ExternalAdapter {
            platform: &p,
            state: killed,
            env: env.clone(),
        };
        // day 0 is still to come (one-second days); the report itself (no logs yet) is not
        // what this test is about
        let _ = adapter.run_day(0, 0.5);
        assert_eq!(adapter.state.share, 0.5);
        assert_eq!(adapter.state.pending, None);
        assert_eq!(p.state("x1").unwrap().unwrap().pending, None);
        // the same share on the next day, without a pending command: nothing to do
        let _ = adapter.run_day(1, 0.5);
        assert_eq!(
            calls(dir.path()),
            ["start x1", "start x1", "traffic x1 0.5"]
        );
    }

    #[test]
    fn declared_metrics_replace_the_simulator_defaults() {
        assert_eq!(log_metrics(&[]).unwrap(), sim_log_metrics());
        let specs = vec![
            LogMetricSpec {
                name: "ctr".into(),
                kind: "ratio".into(),
                event: "click".into(),
                denominator: Some("view".into()),
            },
            LogMetricSpec {
                name: "buyers".into(),
                kind: "proportion".into(),
                event: "purchase".into(),
                denominator: None,
            },
        ];
        assert_eq!(
            log_metrics(&specs).unwrap(),
            vec![
                MetricDef::ratio("ctr", "click", "view"),
                MetricDef::Proportion {
                    name: "buyers".into(),
                    event: "purchase".into()
                }
            ]
        );
    }
}
