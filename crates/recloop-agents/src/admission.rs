//! Admission checks: plain code decides whether a proposal may be developed.

use crate::space::spec_hash;
use recloop_core::{Manifest, Proposal, ScoreWeights};
use recloop_rec::pipeline::PipelineSpec;
use std::collections::BTreeSet;

/// Check one proposal; `Err(reason)` rejects it.
pub fn check(
    p: &Proposal,
    manifest: &Manifest,
    tried_specs: &BTreeSet<String>,
) -> Result<(), String> {
    if p.title.trim().is_empty() || p.hypothesis.trim().is_empty() {
        return Err("title and hypothesis must not be empty".into());
    }
    if p.location.is_empty() {
        return Err("no implementation location given".into());
    }
    for loc in &p.location {
        if !manifest.is_editable(loc) {
            return Err(format!(
                "location `{loc}` is protected or not editable (editable: {:?}, protected: {:?})",
                manifest.project.editable, manifest.project.protected
            ));
        }
    }
    let s = &p.score_parts;
    for (name, v) in [
        ("objective", s.objective),
        ("business", s.business),
        ("feasibility", s.feasibility),
        ("handoff", s.handoff),
        ("evidence", s.evidence),
        ("risk", s.risk),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("score part `{name}` = {v} is outside [0, 1]"));
        }
    }
    let recomputed = s.score(&ScoreWeights::default());
    if (recomputed - p.score).abs() > 1e-9 {
        return Err(format!(
            "S = {} does not match its parts (plain code computes {recomputed:.4})",
            p.score
        ));
    }
    if let Some(spec) = p
        .change
        .get("spec")
        .and_then(|v| serde_json::from_value::<PipelineSpec>(v.clone()).ok())
        && tried_specs.contains(&spec_hash(&spec))
    {
        return Err("duplicate: this exact pipeline was already tried (avoid set)".into());
    }
    Ok(())
}

/// Journal a Brainstorm batch under iteration `it`: the agent's trajectory step, every proposal
/// the brain rejected, then every proposal with its admission verdict ([`check`] against
/// `tried_specs`), each caused by its `proposal_made` event. Returns the admitted proposals in
/// the brain's order.
pub fn record_batch(
    rec: &crate::record::Recorder,
    it: u32,
    out: crate::brain::BrainstormOutput,
    manifest: &Manifest,
    tried_specs: &BTreeSet<String>,
) -> crate::error::Result<Vec<Proposal>> {
    use recloop_journal::Event;
    rec.emit(
        it,
        "brainstorm/trajectory",
        Event::TrajectoryStep {
            proposal_id: None,
            step: out.trajectory,
        },
        None,
    )?;
    let made = |p: &Proposal| {
        rec.emit(
            it,
            &format!("brainstorm/{}/made", p.id),
            Event::ProposalMade {
                proposal: p.clone(),
            },
            None,
        )
    };
    let rejected = |id: &str, reason: String, parent| {
        rec.emit(
            it,
            &format!("brainstorm/{id}/rejected"),
            Event::ProposalRejected {
                proposal_id: id.to_string(),
                reason,
            },
            Some(parent),
        )
    };
    for r in out.rejected {
        let parent = made(&r.proposal)?;
        rejected(&r.proposal.id, r.reason, parent)?;
    }
    let mut admitted = Vec::new();
    for p in out.proposals {
        let parent = made(&p)?;
        match check(&p, manifest, tried_specs) {
            Ok(()) => {
                rec.emit(
                    it,
                    &format!("brainstorm/{}/admitted", p.id),
                    Event::ProposalAdmitted {
                        proposal_id: p.id.clone(),
                    },
                    Some(parent),
                )?;
                admitted.push(p);
            }
            Err(reason) => {
                rejected(&p.id, reason, parent)?;
            }
        }
    }
    Ok(admitted)
}
