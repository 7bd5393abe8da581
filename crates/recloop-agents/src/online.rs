//! Online platforms available to the loop. The simulator platform puts a candidate workspace's
//! pipeline in front of simulated users through `recloop-online`'s guarded experiment
//! (`run_experiment`: ramp, health gate, harm veto, verdict), in a world grounded in the
//! workspace's own dataset.

use crate::evaluate::OnlinePlatform;
use crate::sandbox::Sandbox;
use recloop_core::Manifest;
use recloop_online::{
    Ack, ExperimentConfig, ExperimentEvent, ExperimentReport, ExperimentSettings, run_experiment,
};
use recloop_sim::Policy;
use recloop_sim::grounded::{WorkspaceWorld, load_workspace_world, workspace_policy};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

    fn world(&self) -> Result<Arc<WorkspaceWorld>, String> {
        let mut w = self
            .world
            .lock()
            .map_err(|_| "simulator world lock poisoned".to_string())?;
        if let Some(w) = w.as_ref() {
            return Ok(w.clone());
        }
        let ww = Arc::new(
            load_workspace_world(&self.workspace, self.world_seed).map_err(|e| e.to_string())?,
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
    ) -> Result<ExperimentReport, String> {
        let ww = self.world()?;
        let c = workspace_policy(control, &ww).map_err(|e| format!("control pipeline: {e}"))?;
        let t = workspace_policy(treatment, &ww).map_err(|e| format!("candidate pipeline: {e}"))?;
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
) -> Result<ExperimentReport, String> {
    let users =
        users.unwrap_or(manifest.online.users as usize) * settings.population_scale.max(1) as usize;
    let mut config = ExperimentConfig::new(world, users, settings.seed);
    config.settings.id = settings.id.clone();
    config.settings.approve = settings.approve;
    run_experiment(manifest, control, treatment, &config, observer).map_err(|e| e.to_string())
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
    pub fn export(&self, manifest: &Manifest, dir: &Path) -> Result<SimExport, String> {
        let cmd = &manifest.commands.holdout_eval;
        if cmd.trim().is_empty() {
            return Err("recloop.toml declares no holdout_eval command to export from".into());
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(EXPORT_FILE);
        let _ = std::fs::remove_file(&file);
        let mut sb = self.sandbox.clone();
        sb.env.push((EXPORT_ENV.into(), file.display().to_string()));
        let out = sb.run(&dir, cmd).map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!("export: {}", out.failure_reason()));
        }
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "`{cmd}` did not write the simulator export {} (it must when {EXPORT_ENV} is set): {e}",
                file.display()
            )
        })?;
        let _ = std::fs::remove_file(&file);
        let x: SimExport = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a simulator export: {e}", file.display()))?;
        if x.lists.len() != x.n_users {
            return Err(format!(
                "{}: {} lists for {} users",
                file.display(),
                x.lists.len(),
                x.n_users
            ));
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
    ) -> Result<ExperimentReport, String> {
        let c = self
            .export(manifest, control)
            .map_err(|e| format!("control: {e}"))?;
        let t = self
            .export(manifest, treatment)
            .map_err(|e| format!("candidate: {e}"))?;
        if (c.n_users, c.n_items, &c.interactions) != (t.n_users, t.n_items, &t.interactions) {
            return Err(
                "control and candidate exported different training data: the data must not depend on editable files"
                    .into(),
            );
        }
        let world = recloop_sim::World::from_ratings(
            c.n_users,
            c.n_items,
            &c.interactions,
            self.world_seed,
        )
        .map_err(|e| format!("ground truth from the exported interactions: {e}"))?;
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
/// offline only, with a person's approval); `logs` is refused until `recloop run` can drive it.
pub fn platform_for(
    workspace: &Path,
    manifest: &Manifest,
    sandbox: Option<Sandbox>,
) -> crate::error::Result<Option<Arc<dyn OnlinePlatform>>> {
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
            let sandbox = sandbox.ok_or_else(|| crate::error::AgentError::Invalid {
                path: "recloop.toml [online] platform = \"simulator\"".into(),
                reason: "the simulator of an external workspace runs its holdout_eval export \
                         command, and no sandbox could be built for it"
                    .into(),
            })?;
            Ok(Some(Arc::new(ExportPlatform::new(
                sandbox,
                manifest.run.seed,
            ))))
        }
        other => Err(crate::error::AgentError::Invalid {
            path: "recloop.toml [online] platform".into(),
            reason: format!(
                "{other:?} cannot run inside `recloop run` yet (its logs are read by \
                 `recloop sim`/`recloop stats` only); use \"simulator\", or \"none\" to decide \
                 offline with a person's approval"
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
            err.contains("\"logs\" cannot run inside `recloop run` yet"),
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
