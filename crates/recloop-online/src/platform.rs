//! Online platforms available to the loop, behind [`OnlinePlatform`]. The simulator platform puts
//! a candidate workspace's pipeline in front of simulated users through the guarded experiment
//! ([`run_experiment`]: ramp, health gate, harm veto, verdict), in a world grounded in the
//! workspace's own dataset; the export platform does the same for an external workspace's ranked
//! lists.

use crate::error::OnlineError;
use crate::{
    Ack, ExperimentConfig, ExperimentEvent, ExperimentReport, ExperimentSettings, run_experiment,
};
use recloop_core::Manifest;
use recloop_sandbox::Sandbox;
use recloop_sim::Policy;
use recloop_sim::grounded::{WorkspaceWorld, load_workspace_world, workspace_policy};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An online experiment platform (simulator or logs adapter) behind one trait.
pub trait OnlinePlatform: Send + Sync {
    /// `simulator`, `logs`, ...
    fn name(&self) -> String;
    /// Run a guarded A/B of `treatment` (a candidate worktree) against `control` (production).
    fn run(
        &self,
        manifest: &Manifest,
        control: &Path,
        treatment: &Path,
        settings: &ExperimentSettings,
        observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    ) -> Result<ExperimentReport, PlatformError>;
}

/// Why an online platform could not run an experiment: one variant per cause.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The simulated world could not be built from the workspace's dataset.
    #[error("simulator world: {0}")]
    World(String),
    /// One side's pipeline could not be put in front of simulated users.
    #[error("{side} pipeline: {detail}")]
    Pipeline {
        /// `control` or `candidate`.
        side: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// One side's simulator export failed.
    #[error("{side}: {source}")]
    Export {
        /// `control` or `candidate`.
        side: &'static str,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// Control and candidate exported different training data.
    #[error(
        "control and candidate exported different training data: the data must not depend on editable files"
    )]
    TrainingDataDiffers,
    /// The guarded experiment itself failed (an observer stop, a statistics error, ...).
    #[error(transparent)]
    Experiment(#[from] OnlineError),
    /// A command of the external platform failed.
    #[error("[online.external] {key} command `{command}`: {detail}")]
    Command {
        /// `start`, `traffic` or `stop`.
        key: &'static str,
        /// The command line.
        command: String,
        /// Why (exit status and the tail of its output, or the time limit).
        detail: String,
    },
    /// Another platform's own failure (e.g. a connection refused).
    #[error("{0}")]
    Other(String),
}

/// Why a workspace's simulator export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The manifest declares no `holdout_eval` command.
    #[error("recloop.toml declares no holdout_eval command to export from")]
    NoCommand,
    /// The checkout directory is not there.
    #[error("{path}: {source}")]
    Checkout {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox could not start the command.
    #[error("sandbox: {0}")]
    Sandbox(#[from] recloop_sandbox::SandboxError),
    /// The command failed.
    #[error("export: {0}")]
    CommandFailed(String),
    /// The command wrote no export file.
    #[error(
        "`{command}` did not write the simulator export {} (it must when {EXPORT_ENV} is set): {source}",
        path.display()
    )]
    Missing {
        /// The command.
        command: String,
        /// The file it should have written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a simulator export.
    #[error("{}: not a simulator export: {detail}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// The export has a list count other than its user count.
    #[error("{}: {lists} lists for {users} users", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Lists found.
        lists: usize,
        /// Users declared.
        users: usize,
    },
}

/// The simulator platform of a built-in pipeline workspace.
pub struct SimulatorPlatform {
    workspace: PathBuf,
    world_seed: u64,
    world: Mutex<Option<Arc<WorkspaceWorld>>>,
    /// Simulated users per experiment (default: `[online] users`).
    pub users: Option<usize>,
}

impl SimulatorPlatform {
    /// A simulator for the workspace at `workspace` (the world is built on first use).
    pub fn new(workspace: &Path, world_seed: u64) -> SimulatorPlatform {
        SimulatorPlatform {
            workspace: workspace.to_path_buf(),
            world_seed,
            world: Mutex::new(None),
            users: None,
        }
    }

    fn world(&self) -> Result<Arc<WorkspaceWorld>, PlatformError> {
        let mut w = self
            .world
            .lock()
            .map_err(|_| PlatformError::World("the world's lock is poisoned".into()))?;
        if let Some(w) = w.as_ref() {
            return Ok(w.clone());
        }
        let ww = Arc::new(
            load_workspace_world(&self.workspace, self.world_seed)
                .map_err(|e| PlatformError::World(e.to_string()))?,
        );
        *w = Some(ww.clone());
        Ok(ww)
    }
}

impl OnlinePlatform for SimulatorPlatform {
    fn name(&self) -> String {
        "simulator".into()
    }

    fn run(
        &self,
        manifest: &Manifest,
        control: &Path,
        treatment: &Path,
        settings: &ExperimentSettings,
        observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    ) -> Result<ExperimentReport, PlatformError> {
        let ww = self.world()?;
        let pipeline = |side: &'static str| {
            move |e: recloop_sim::SimError| PlatformError::Pipeline {
                side,
                detail: e.to_string(),
            }
        };
        let c = workspace_policy(control, &ww).map_err(pipeline("control"))?;
        let t = workspace_policy(treatment, &ww).map_err(pipeline("candidate"))?;
        let world = ww.world.clone();
        run_simulated(manifest, world, self.users, &c, &t, settings, observer)
    }
}

/// The guarded experiment of `treatment` against `control` in `world`, with `users` simulated
/// users (default `[online] users`) times the settings' population scale, and the settings' id,
/// seed and approve mode.
fn run_simulated(
    manifest: &Manifest,
    world: Arc<recloop_sim::World>,
    users: Option<usize>,
    control: &dyn Policy,
    treatment: &dyn Policy,
    settings: &ExperimentSettings,
    observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
) -> Result<ExperimentReport, PlatformError> {
    let users =
        users.unwrap_or(manifest.online.users as usize) * settings.population_scale.max(1) as usize;
    let mut config = ExperimentConfig::new(world, users, settings.seed);
    config.settings.id = settings.id.clone();
    config.settings.approve = settings.approve;
    Ok(run_experiment(
        manifest, control, treatment, &config, observer,
    )?)
}

/// Environment variable naming the file an external workspace's `holdout_eval` writes its
/// export to (see the module documentation).
pub const EXPORT_ENV: &str = "RECLOOP_SIM_EXPORT";
/// The export file, inside the worktree (the sandbox allows writes there only).
pub const EXPORT_FILE: &str = ".recloop-sim-export.json";

/// What an external workspace exports for the simulator.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SimExport {
    /// Users (dense ids `0..n_users`).
    pub n_users: usize,
    /// Items (dense ids `0..n_items`).
    pub n_items: usize,
    /// Training interactions `(user, item, rating)` (implicit data: rating 1).
    pub interactions: Vec<(u32, u32, f32)>,
    /// Ranked list per user, best first.
    pub lists: Vec<Vec<u32>>,
}

/// The simulator platform of an external workspace: recommendations come from its export.
pub struct ExportPlatform {
    sandbox: Sandbox,
    world_seed: u64,
    /// Simulated users per experiment (default: `[online] users`).
    pub users: Option<usize>,
}

impl ExportPlatform {
    /// A platform running exports in `sandbox`, worlds seeded with `world_seed`.
    pub fn new(sandbox: Sandbox, world_seed: u64) -> ExportPlatform {
        ExportPlatform {
            sandbox,
            world_seed,
            users: None,
        }
    }

    /// Run the export of the checkout at `dir`.
    pub fn export(&self, manifest: &Manifest, dir: &Path) -> Result<SimExport, ExportError> {
        let cmd = &manifest.commands.holdout_eval;
        if cmd.trim().is_empty() {
            return Err(ExportError::NoCommand);
        }
        let dir = dir.canonicalize().map_err(|source| ExportError::Checkout {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(EXPORT_FILE);
        let _ = std::fs::remove_file(&file);
        let mut sb = self.sandbox.clone();
        sb.env.push((EXPORT_ENV.into(), file.display().to_string()));
        let out = sb.run(&dir, cmd)?;
        if !out.success() {
            return Err(ExportError::CommandFailed(out.failure_reason()));
        }
        let text = std::fs::read_to_string(&file).map_err(|source| ExportError::Missing {
            command: cmd.clone(),
            path: file.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&file);
        let x: SimExport = serde_json::from_str(&text).map_err(|e| ExportError::Malformed {
            path: file.clone(),
            detail: e.to_string(),
        })?;
        if x.lists.len() != x.n_users {
            return Err(ExportError::Shape {
                path: file,
                lists: x.lists.len(),
                users: x.n_users,
            });
        }
        Ok(x)
    }
}

impl OnlinePlatform for ExportPlatform {
    fn name(&self) -> String {
        "simulator (exported lists)".into()
    }

    fn run(
        &self,
        manifest: &Manifest,
        control: &Path,
        treatment: &Path,
        settings: &ExperimentSettings,
        observer: &mut dyn FnMut(&ExperimentEvent) -> Ack,
    ) -> Result<ExperimentReport, PlatformError> {
        let export = |side: &'static str, dir: &Path| {
            self.export(manifest, dir)
                .map_err(|source| PlatformError::Export { side, source })
        };
        let c = export("control", control)?;
        let t = export("candidate", treatment)?;
        if (c.n_users, c.n_items, &c.interactions) != (t.n_users, t.n_items, &t.interactions) {
            return Err(PlatformError::TrainingDataDiffers);
        }
        let world = recloop_sim::World::from_ratings(
            c.n_users,
            c.n_items,
            &c.interactions,
            self.world_seed,
        )
        .map_err(|e| {
            PlatformError::World(format!("ground truth from the exported interactions: {e}"))
        })?;
        let world = Arc::new(world);
        let policy = |name: &str, x: &SimExport| {
            let n_items = x.n_items;
            recloop_sim::policy::RankedListPolicy::from_fn(
                name,
                world.n_profiles,
                recloop_sim::policy::LIST_LEN,
                |p| {
                    x.lists
                        .get(p)
                        .map(|l| {
                            l.iter()
                                .copied()
                                .filter(|&i| (i as usize) < n_items)
                                .take(recloop_sim::policy::LIST_LEN)
                                .collect()
                        })
                        .unwrap_or_default()
                },
            )
        };
        let cp = policy("control", &c);
        let tp = policy("candidate", &t);
        run_simulated(manifest, world, self.users, &cp, &tp, settings, observer)
    }
}

/// The online platform `[online] platform` names, built now so that a platform that cannot be
/// built fails at start with the reason: `simulator` is the simulator grounded in the
/// workspace's dataset for built-in pipeline workspaces, the export platform for external ones
/// (which needs a sandbox for the export command); `none` is no platform (a KEEP is then decided
/// offline only, with a person's approval); `external` is the team's own platform
/// ([`crate::external`]); `logs` is refused (a replay of logs cannot change traffic).
pub fn platform_for(
    workspace: &Path,
    manifest: &Manifest,
    sandbox: Option<Sandbox>,
) -> Result<Option<Arc<dyn OnlinePlatform>>, OnlineError> {
    match manifest.online.platform.as_str() {
        "none" => Ok(None),
        "simulator" => {
            let pipeline = workspace.join("pipeline.toml").exists()
                && workspace.join("eval/eval.toml").exists();
            if pipeline {
                return Ok(Some(Arc::new(SimulatorPlatform::new(
                    workspace,
                    manifest.run.seed,
                ))));
            }
            let sandbox = sandbox.ok_or_else(|| OnlineError::Config {
                field: "recloop.toml [online] platform = \"simulator\"".into(),
                reason: "the simulator of an external workspace runs its holdout_eval export \
                         command, and no sandbox could be built for it"
                    .into(),
            })?;
            Ok(Some(Arc::new(ExportPlatform::new(
                sandbox,
                manifest.run.seed,
            ))))
        }
        "external" => Ok(Some(Arc::new(crate::external::ExternalPlatform::new(
            workspace, manifest,
        )?))),
        other => Err(OnlineError::Config {
            field: "recloop.toml [online] platform".into(),
            reason: format!(
                "{other:?} cannot run inside `recloop run` (a logs replay cannot change traffic; \
                 its logs are read by `recloop sim`/`recloop stats`); use \"simulator\", \
                 \"external\" for your own platform, or \"none\" to decide offline with a \
                 person's approval"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_that_cannot_run_is_an_error_at_start_and_none_means_offline_only() {
        let dir = tempfile::tempdir().unwrap();
        let text = |platform: &str| {
            format!(
                "[project]\nname='x'\neditable=['a']\n[metrics]\nprimary={{name='m',direction='increase'}}\n[online]\nplatform = \"{platform}\"\nlogs = \"logs/\"\n"
            )
        };
        let m = |p: &str| Manifest::parse(&text(p), Path::new("recloop.toml")).unwrap();
        let err = platform_for(dir.path(), &m("logs"), None)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("\"logs\" cannot run inside `recloop run`"),
            "{err}"
        );
        assert!(
            platform_for(dir.path(), &m("none"), None)
                .unwrap()
                .is_none()
        );
        // an external workspace's simulator needs a sandbox for its export command
        let err = platform_for(dir.path(), &m("simulator"), None)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("no sandbox could be built"), "{err}");
    }
}
