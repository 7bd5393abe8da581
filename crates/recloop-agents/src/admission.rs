//! Admission checks: plain code decides whether a proposal may be developed. Every check here
//! can reject (each has a test that shows it): an empty title or hypothesis, no location or a
//! protected one, a score part outside [0, 1], and a duplicate of an experiment already tried or
//! rejected — by its exact pipeline spec or declared-parameter values, by its normalized change,
//! or by the similarity of its text. The score S is recomputed from its parts by [`normalize`]; a brain's own S is ignored.

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
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
            )
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
    within_persona(p, manifest)?;
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
        && let Some(t) = past
            .iter()
            .find(|t| change_hash(&t.proposal).as_ref() == Some(&h))
    {
        return Err(format!(
            "duplicate: the same change as {} (\"{}\"){}",
            t.proposal.id,
            t.proposal.title,
            outcome_of(t)
        ));
    }
    // A declared-space assignment is typed too: compared by its exact values.
    let assignment = p.change.get("assignment").filter(|a| a.is_object());
    if let Some(a) = assignment
        && let Some(t) = past
            .iter()
            .find(|t| t.proposal.change.get("assignment") == Some(a))
    {
        return Err(format!(
            "duplicate: the same values of the declared parameters as {} (\"{}\"){}",
            t.proposal.id,
            t.proposal.title,
            outcome_of(t)
        ));
    }
    // Typed proposals are compared by their exact spec or assignment above; free-text ones by
    // their words.
    if spec.is_none()
        && assignment.is_none()
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
        let hash = change_hash(&p);
        let in_batch = admitted
            .iter()
            .find(|a| hash.is_some() && change_hash(a) == hash);
        let verdict = match in_batch {
            Some(a) => Err(format!(
                "duplicate: the same change as {} in this batch",
                a.id
            )),
            None => check(&p, manifest, history),
        }
        .and_then(|()| within_quota(&p, &admitted, manifest));
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

/// `[[personas]]`: a persona's proposal must pull one of its levers (a reward persona does not
/// retune models); a persona the manifest does not define is refused.
fn within_persona(p: &Proposal, manifest: &Manifest) -> Result<(), String> {
    if p.persona.is_empty() {
        return Ok(());
    }
    let Some(persona) = manifest.persona(&p.persona) else {
        return Err(format!(
            "persona {:?} is not defined in recloop.toml [[personas]]",
            p.persona
        ));
    };
    if !persona.allows(&p.lever) {
        return Err(format!(
            "outside the {} persona's scope: lever {:?} is not one of {:?}",
            persona.name, p.lever, persona.levers
        ));
    }
    Ok(())
}

/// `[run] quotas`: a proposal past its kind's quota in this batch is rejected (the batch's
/// proposals are taken in the order the brain ranked them).
fn within_quota(p: &Proposal, admitted: &[Proposal], manifest: &Manifest) -> Result<(), String> {
    let Some(q) = &manifest.run.quotas else {
        return Ok(());
    };
    let quota = q.of(p.kind);
    let before: Vec<&str> = admitted
        .iter()
        .filter(|a| a.kind == p.kind)
        .map(|a| a.id.as_str())
        .collect();
    if before.len() as u32 >= quota {
        return Err(format!(
            "quota: {} {:?} proposal(s) per batch ([run] quotas){}",
            quota,
            p.kind,
            if before.is_empty() {
                String::new()
            } else {
                format!(", already admitted: {}", before.join(", "))
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Trial;
    use recloop_core::Decision;
    use recloop_journal::fixtures;
    use std::path::Path;

    fn manifest() -> Manifest {
        let text = "[project]\nname='t'\neditable=['pipeline.toml']\nprotected=['recloop.toml']\n\
                    [metrics]\nprimary={name='ndcg@10',direction='increase'}\n";
        Manifest::parse(text, Path::new("recloop.toml")).unwrap()
    }

    fn proposal(id: &str, title: &str) -> Proposal {
        fixtures::proposal(
            id,
            title,
            "raising lambda regularises the item weights",
            "ranking",
            "ease.lambda",
        )
    }

    fn tried(p: Proposal, decision: Option<Decision>, rejected: Option<&str>) -> Trial {
        Trial {
            proposal: p,
            seq: 1,
            spec: None,
            base_hash: None,
            value: Some(0.4),
            decision,
            rejected: rejected.map(str::to_string),
            merged: false,
            online: false,
            diff_hash: None,
            error: None,
            quality: None,
            guardrail_failed: false,
        }
    }

    fn rejects(p: &Proposal, h: &History, needle: &str) {
        let e = check(p, &manifest(), h).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }

    #[test]
    fn each_check_can_reject() {
        let h = History::default();
        let ok = proposal("p1", "raise EASE lambda to 800");
        assert!(check(&ok, &manifest(), &h).is_ok());
        rejects(
            &Proposal {
                title: " ".into(),
                ..ok.clone()
            },
            &h,
            "must not be empty",
        );
        rejects(
            &Proposal {
                location: vec![],
                ..ok.clone()
            },
            &h,
            "no implementation location",
        );
        rejects(
            &Proposal {
                location: vec!["recloop.toml".into()],
                ..ok.clone()
            },
            &h,
            "protected or not editable",
        );
        let mut bad = ok.clone();
        bad.score_parts.risk = 1.5;
        rejects(&bad, &h, "score part `risk`");
    }

    #[test]
    fn the_brain_s_own_score_is_replaced_by_plain_code() {
        let mut p = proposal("p1", "x");
        p.score = 99.0;
        let n = normalize(p.clone());
        assert_eq!(n.score, p.score_parts.score(&ScoreWeights::default()));
        assert_ne!(n.score, 99.0);
    }

    #[test]
    fn declared_values_are_compared_exactly_not_by_their_templated_words() {
        let assigned = |id: &str, factors: i64, base: &str| {
            let mut p = proposal(id, &format!("set factors 4 → {factors}"));
            p.change = serde_json::json!({"assignment": {"factors": factors, "reg": 1.0},
                                          "base_hash": base});
            p
        };
        let h = History {
            trials: vec![tried(assigned("p0", 9, "a"), Some(Decision::Discard), None)],
            ..History::default()
        };
        // the same values from another production: a duplicate
        rejects(
            &assigned("p1", 9, "b"),
            &h,
            "same values of the declared parameters as p0",
        );
        // other values with nearly the same words: not a duplicate
        assert!(check(&assigned("p2", 10, "a"), &manifest(), &h).is_ok());
    }

    #[test]
    fn an_identical_change_is_a_duplicate_in_any_key_order() {
        let mut earlier = proposal("p0", "raise EASE lambda to 800");
        earlier.change = serde_json::json!({"file": "pipeline.toml", "set": {"ease.lambda": 800}});
        let h = History {
            trials: vec![tried(earlier, Some(Decision::Discard), None)],
            ..History::default()
        };
        let mut again = proposal("p1", "a completely different title about regularisation");
        again.hypothesis = "other words entirely".into();
        again.change = serde_json::json!({"set": {"ease.lambda": 800}, "file": " pipeline.toml "});
        rejects(&again, &h, "duplicate: the same change as p0");
        again.change = serde_json::json!({"set": {"ease.lambda": 900}, "file": "pipeline.toml"});
        assert!(check(&again, &manifest(), &h).is_ok());
    }

    #[test]
    fn a_reworded_repeat_of_a_rejected_idea_is_a_duplicate() {
        let mut earlier = proposal("p0", "Raise the EASE lambda to regularise item weights");
        earlier.change = serde_json::json!({"a": 1});
        let h = History {
            trials: vec![tried(earlier, None, Some("gate Schema failed"))],
            ..History::default()
        };
        let mut again = proposal(
            "p1",
            "raise the EASE lambda, to regularise the item weights",
        );
        again.change = serde_json::json!({"b": 2});
        rejects(&again, &h, "repeat p0");
        let mut other = proposal("p2", "add an ItemKNN model to the blend");
        other.hypothesis = "neighbourhoods capture co-consumption that EASE misses".into();
        other.mechanism = "a second candidate source".into();
        other.change = serde_json::json!({"c": 3});
        assert!(check(&other, &manifest(), &h).is_ok());
    }

    #[test]
    fn proposals_never_tried_do_not_count_as_duplicates() {
        let mut only_made = tried(proposal("p0", "raise EASE lambda to 800"), None, None);
        only_made.value = None;
        let h = History {
            trials: vec![only_made],
            ..History::default()
        };
        assert!(check(&proposal("p1", "raise EASE lambda to 800"), &manifest(), &h).is_ok());
    }

    #[test]
    fn a_kind_past_its_quota_is_rejected() {
        use recloop_core::ProposalKind::{Exploit, Explore, Novel};
        let mut m = manifest();
        let p = |id: &str, kind| {
            let mut p = proposal(id, id);
            p.kind = kind;
            p
        };
        let admitted = vec![p("a", Exploit), p("b", Explore)];
        // no quotas: kinds are not counted
        assert!(within_quota(&p("c", Exploit), &admitted, &m).is_ok());
        m.run.quotas = Some(recloop_core::Quotas {
            exploit: 1,
            explore: 2,
            novel: 0,
        });
        let err = within_quota(&p("c", Exploit), &admitted, &m).unwrap_err();
        assert!(
            err.contains("quota: 1 Exploit") && err.contains("already admitted: a"),
            "{err}"
        );
        assert!(within_quota(&p("d", Explore), &admitted, &m).is_ok());
        let err = within_quota(&p("e", Novel), &admitted, &m).unwrap_err();
        assert!(err.starts_with("quota: 0 Novel"), "{err}");
        assert_eq!(
            m.run.quotas.unwrap().schedule(),
            [Exploit, Explore, Explore]
        );
    }
}
