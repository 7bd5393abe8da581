//! Brainstorm by personas (`[[personas]]`): the batch's slots are dealt to the personas in turn,
//! each persona brainstorms its share with its own scope, tools, instructions and model role,
//! and the answers become one batch (one trajectory step) for admission.

use crate::brain::{Brain, BrainstormInput, BrainstormOutput};
use crate::error::Result;
use recloop_core::{Persona, TrajectoryStep};

/// How many proposals each persona gets in a batch of `batch`: slot `i` goes to persona
/// `(offset + i) % n`, so a batch smaller than the personas rotates them across iterations.
pub fn shares(n: usize, batch: usize, offset: usize) -> Vec<usize> {
    let mut out = vec![0; n];
    if n == 0 {
        return out;
    }
    for i in 0..batch {
        out[(offset + i) % n] += 1;
    }
    out
}

/// Brainstorm `input.batch_size` proposals: by the generalist when `personas` is empty, else by
/// each persona for its share (`offset` rotates the deal; pass the iteration). Proposals are
/// tagged with their persona and keep unique ids (`<prefix>-<persona>-NN`).
pub fn brainstorm(
    brain: &dyn Brain,
    input: &BrainstormInput<'_>,
    personas: &[Persona],
    offset: usize,
) -> Result<BrainstormOutput> {
    if personas.is_empty() {
        return brain.brainstorm(input);
    }
    let mut merged = BrainstormOutput {
        proposals: Vec::new(),
        rejected: Vec::new(),
        trajectory: TrajectoryStep {
            agent: "brainstorm".into(),
            input: String::new(),
            tool_calls: Vec::new(),
            output: String::new(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            duration_ms: 0,
        },
    };
    let mut by_persona: Vec<Vec<recloop_core::Proposal>> = Vec::new();
    for (k, (persona, share)) in personas
        .iter()
        .zip(shares(personas.len(), input.batch_size, offset))
        .enumerate()
    {
        if share == 0 {
            continue;
        }
        let prefix = format!("{}-{}", input.id_prefix, persona.name);
        let out = brain.brainstorm(&BrainstormInput {
            batch_size: share,
            seed: input.seed.wrapping_add(0x9E37_79B9 * (k as u64 + 1)),
            id_prefix: &prefix,
            persona: Some(persona),
            ..*input
        })?;
        let tag = |mut p: recloop_core::Proposal| {
            p.persona = persona.name.clone();
            p
        };
        by_persona.push(out.proposals.into_iter().map(tag).collect::<Vec<_>>());
        merged
            .rejected
            .extend(out.rejected.into_iter().map(|mut r| {
                r.proposal.persona = persona.name.clone();
                r
            }));
        let t = out.trajectory;
        let step = &mut merged.trajectory;
        step.input
            .push_str(&format!("## persona {}\n{}\n", persona.name, t.input));
        step.output
            .push_str(&format!("## persona {}\n{}\n", persona.name, t.output));
        step.tool_calls
            .extend(t.tool_calls.into_iter().map(|mut c| {
                if let Some(o) = c.as_object_mut() {
                    o.insert("persona".into(), persona.name.clone().into());
                }
                c
            }));
        step.tokens_in += t.tokens_in;
        step.tokens_out += t.tokens_out;
        step.cost_usd += t.cost_usd;
        step.duration_ms += t.duration_ms;
    }
    merged.proposals = interleave(by_persona, offset);
    Ok(merged)
}

/// The personas' proposals in turns (each persona's best, then each one's second, ...),
/// starting with the list at `offset` (mod their number): the loop takes proposals in this
/// order, so with one worker every persona gets its turn.
fn interleave<T>(lists: Vec<Vec<T>>, offset: usize) -> Vec<T> {
    let n = lists.len();
    let mut iters: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for k in 0..n {
            if let Some(x) = iters[(offset + k) % n].next() {
                out.push(x);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_take_turns_starting_with_the_offset() {
        let lists = vec![vec!["o1", "o2"], vec![], vec!["r1"]];
        assert_eq!(interleave(lists.clone(), 0), ["o1", "r1", "o2"]);
        assert_eq!(interleave(lists.clone(), 2), ["r1", "o1", "o2"]);
        assert_eq!(interleave(lists, 1), ["r1", "o1", "o2"]);
    }

    #[test]
    fn slots_are_dealt_in_turn_and_rotate_with_the_offset() {
        assert_eq!(shares(3, 4, 0), vec![2, 1, 1]);
        assert_eq!(shares(3, 4, 1), vec![1, 2, 1]);
        assert_eq!(shares(3, 2, 2), vec![1, 0, 1]);
        assert_eq!(shares(0, 4, 0), Vec::<usize>::new());
    }
}
