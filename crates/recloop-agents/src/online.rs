//! Online platforms available to the loop. The simulator platform puts a candidate workspace's
//! pipeline in front of simulated users through `recloop-online`'s guarded experiment
//! (`run_experiment`: ramp, health gate, harm veto, verdict), in a world grounded in the
//! workspace's own dataset.

use crate::evaluate::OnlinePlatform;
use recloop_core::Manifest;
use recloop_online::{
    Ack, ExperimentConfig, ExperimentEvent, ExperimentReport, ExperimentSettings, run_experiment,
};
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
        let users = self.users.unwrap_or(manifest.online.users as usize);
        let mut config = ExperimentConfig::new(ww.world.clone(), users, settings.seed);
        config.settings.id = settings.id.clone();
        config.settings.approve = settings.approve;
        run_experiment(manifest, &c, &t, &config, observer).map_err(|e| e.to_string())
    }
}

/// The platform for a workspace: the simulator for built-in pipeline workspaces whose
/// `[online] platform` is `simulator`; None otherwise (the cascade then stops offline, with a caveat).
pub fn platform_for(workspace: &Path) -> Option<Arc<dyn OnlinePlatform>> {
    let m = Manifest::load(workspace).ok()?;
    let pipeline =
        workspace.join("pipeline.toml").exists() && workspace.join("eval/eval.toml").exists();
    (m.online.platform == "simulator" && pipeline)
        .then(|| Arc::new(SimulatorPlatform::new(workspace, m.run.seed)) as Arc<dyn OnlinePlatform>)
}
