//! The simulated calendar: how many days of online experiments a run has used. The online
//! experiments of one iteration run side by side (the single loop's `--workers`, the dual
//! loop's slots), so an iteration lasts as long as its longest candidate; a candidate lasts
//! as long as its experiments one after the other (an extension is a new experiment, counted
//! at the length of the last one, which the verdict records).

use recloop_journal::{Event, EventRecord};
use std::collections::BTreeMap;

/// Online usage of one run, from its journal events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OnlineUsage {
    /// Simulated (or real) days the run's online experiments took.
    pub days: u32,
    /// Online experiments started (extensions included).
    pub experiments: u32,
}

/// The online usage of run `run_id`.
pub fn online_usage(events: &[EventRecord], run_id: &str) -> OnlineUsage {
    let mine = || events.iter().filter(|e| e.run_id == run_id);
    let mut started: BTreeMap<&str, u32> = BTreeMap::new();
    for e in mine() {
        if let Event::ExperimentStarted { proposal_id, .. } = &e.event {
            *started.entry(proposal_id).or_default() += 1;
        }
    }
    let mut longest: BTreeMap<u32, u32> = BTreeMap::new();
    for e in mine() {
        if let Event::Verdict {
            proposal_id,
            verdict,
            experiment_id: Some(_),
            ..
        } = &e.event
        {
            let days =
                verdict.window_days * started.get(proposal_id.as_str()).copied().unwrap_or(1);
            let d = longest.entry(e.iteration).or_default();
            *d = (*d).max(days);
        }
    }
    OnlineUsage {
        days: longest.values().sum(),
        experiments: started.values().sum(),
    }
}
