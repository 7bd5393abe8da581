//! Admission checks: plain code decides whether a proposal may be developed. Every check here
//! can reject (each has a test that shows it): an empty title or hypothesis, no location or a
//! protected one, a score part outside [0, 1], and a duplicate of an experiment already tried or
//! rejected — by its exact pipeline spec, by its normalized change, or by the similarity of its
//! text. The score S is recomputed from its parts by [`normalize`]; a brain's own S is ignored.

use crate::history::{History, Trial};
use crate::space::spec_hash;
use recloop_core::{Manifest, Proposal, ScoreWeights};
use recloop_rec::pipeline::PipelineSpec;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Word-set similarity (Jaccard) at or above which a free-text proposal repeats an earlier one.
pub const SIMILARITY_THRESHOLD: f64 = 0.8;

/// Set S from its parts with the default weights (the brain's own S is not trusted).
pub fn normalize(mut p: Proposal) -> Proposal {
    p.score = p.score_parts.score(&ScoreWeights::default());
    p
}

/// Hash of a proposal's change with every object's keys in a fixed order, so that the same
/// change written in another key order or layout is recognised.
pub fn change_hash(p: &Proposal) -> Option<String> {
    if p.change.is_null() || p.change.as_object().is_some_and(|o| o.is_empty()) {
        return None;
    }
    let canonical = canonical_json(&p.change);
    Some(hex::encode(Sha256::digest(canonical.as_bytes())))
}

fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::Value::from(k.as_str()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        serde_json::Value::Array(a) => {
            format!("[{}]", a.iter().map(canonical_json).collect::<Vec<_>>().join(","))
        }
        serde_json::Value::String(s) => serde_json::Value::from(s.trim()).to_string(),
        other => other.to_string(),
    }
}

/// The lower-case words of a proposal's title, hypothesis and mechanism.
fn words(p: &Proposal) -> BTreeSet<String> {
    format!("{} {} {}", p.title, p.hypothesis, p.mechanism)
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '.' && c != '@')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Jaccard similarity of two proposals' words (shared words over all words).
pub fn similarity(a: &Proposal, b: &Proposal) -> f64 {
    let (x, y) = (words(a), words(b));
    let union = x.union(&y).count();
    if union == 0 {
        return 0.0;
    }
    x.intersection(&y).count() as f64 / union as f64
}

/// A past experiment counts for duplicates once it was tried (developed or decided) or
/// rejected; proposals only made (never selected) do not.
fn counts(t: &Trial) -> bool {
    t.rejected.is_some() || t.decision.is_some() || t.value.is_some() || t.diff_hash.is_some()
}

/// Check one proposal against the manifest and the journal; `Err(reason)` rejects it.
pub fn check(p: &Proposal, manifest: &Manifest, history: &History) -> Result<(), String> {
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
    let spec = p
        .change
        .get("spec")
        .and_then(|v| serde_json::from_value::<PipelineSpec>(v.clone()).ok());
    if let Some(spec) = &spec
        && history.tried_specs().contains(&spec_hash(spec))
    {
        return Err("duplicate: this exact pipeline was already tried (avoid set)".into());
    }
    let past: Vec<&Trial> = history
        .trials
        .iter()
        .filter(|t| t.proposal.id != p.id && counts(t))
        .collect();
    if let Some(h) = change_hash(p)
        && let Some(t) = past.iter().find(|t| change_hash(&t.proposal).as_ref() == Some(&h))
    {
        return Err(format!(
            "duplicate: the same change as {} (\"{}\"){}",
            t.proposal.id,
            t.proposal.title,
            outcome_of(t)
        ));
    }
    // Typed proposals are compared by their exact spec above; free-text ones by their words.
    if spec.is_none()
        && let Some((t, sim)) = past
            .iter()
            .map(|t| (t, similarity(p, &t.proposal)))
            .filter(|(_, s)| *s >= SIMILARITY_THRESHOLD)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        return Err(format!(
            "duplicate: {:.0}% of its words repeat {} (\"{}\"){}",
            sim * 100.0,
            t.proposal.id,
            t.proposal.title,
            outcome_of(t)
        ));
    }
    Ok(())
}

fn outcome_of(t: &Trial) -> String {
    match (&t.decision, &t.rejected) {
        (Some(d), _) => format!(", decided {d}"),
        (None, Some(r)) => format!(", rejected: {r}"),
        _ => String::new(),
    }
}

/// Journal a Brainstorm batch under iteration `it`: the agent's trajectory step, every proposal
/// the brain rejected, then every proposal (its S recomputed) with its admission verdict
/// ([`check`] against the journal's history and the batch's earlier proposals), each caused by
/// its `proposal_made` event. Returns the admitted proposals in the brain's order.
pub fn record_batch(
    rec: &crate::record::Recorder,
    it: u32,
    out: crate::brain::BrainstormOutput,
    manifest: &Manifest,
    history: &History,
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
    let mut admitted: Vec<Proposal> = Vec::new();
    for p in out.proposals.into_iter().map(normalize) {
        let parent = made(&p)?;
        let in_batch = admitted
            .iter()
            .find(|a| change_hash(a).is_some() && change_hash(a) == change_hash(&p));
        let verdict = match in_batch {
            Some(a) => Err(format!("duplicate: the same change as {} in this batch", a.id)),
            None => check(&p, manifest, history),
        };
        match verdict {
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
