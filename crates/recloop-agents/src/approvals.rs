//! Approvals: the decisions that wait for a person. An attention-level guardrail (offline or
//! online), a KEEP under `--approve`, a KEEP decided offline only (`[online] platform = "none"`)
//! and a `probe-first` proposal that passed its probe each become an `approval_requested` event.
//!
//! The run then asks, in this order: an answer already in the journal (`recloop approve ID` /
//! `recloop reject ID` between two runs, or an earlier answer before a crash), a person at the
//! terminal ([`Prompter`], supplied by the CLI when stdin is a terminal), and finally the
//! unattended policy: [`Unattended::Wait`] stops the run at the approval
//! ([`AgentError::AwaitingApproval`]; `recloop run` continues from there once it is answered),
//! [`Unattended::Reject`] declines it and records that no person was asked.

use crate::error::{AgentError, Result};
use crate::record::Recorder;
use recloop_core::{ApprovalKind, Approver};
use recloop_journal::{Event, EventFilter, EventRecord, Journal, NewEvent};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A decision put to a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    /// Stable id (the same on every re-execution of the step that asks).
    pub id: String,
    /// Proposal concerned.
    pub proposal_id: Option<String>,
    /// Why a person is needed.
    pub kind: ApprovalKind,
    /// The question, in one sentence.
    pub question: String,
    /// The evidence shown with it.
    pub evidence: serde_json::Value,
}

/// The answer to an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Approved (true) or rejected.
    pub approved: bool,
    /// Who answered.
    pub by: Approver,
    /// The reason given.
    pub reason: String,
}

/// Someone who can be asked right now (a person at the terminal, or a script in tests).
pub trait Prompter: Send + Sync {
    /// Ask; `None` when nobody answered (e.g. end of input).
    fn ask(&self, request: &ApprovalRequest) -> Option<Answer>;
}

/// What happens to an approval nobody can answer now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unattended {
    /// Stop the run at the approval; `recloop run` continues once it is answered.
    #[default]
    Wait,
    /// Decline it, recording that no person was asked.
    Reject,
}

impl Unattended {
    /// The flag value (`wait`, `reject`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unattended::Wait => "wait",
            Unattended::Reject => "reject",
        }
    }
}

/// How a run obtains answers.
#[derive(Clone, Default)]
pub struct Approvals {
    /// Who can be asked now (None: nobody at a terminal).
    pub prompter: Option<Arc<dyn Prompter>>,
    /// What happens when nobody can answer.
    pub unattended: Unattended,
}

impl Approvals {
    /// Ask `request` at iteration `it`: a recorded answer, else the prompter, else the policy.
    pub fn ask(&self, rec: &Recorder, it: u32, request: &ApprovalRequest) -> Result<Answer> {
        if let Some(a) = recorded_answer(&rec.journal, &request.id)? {
            return Ok(a);
        }
        let parent = rec.emit(
            it,
            &format!("approval/{}/requested", request.id),
            Event::ApprovalRequested {
                approval_id: request.id.clone(),
                proposal_id: request.proposal_id.clone(),
                kind: request.kind,
                question: request.question.clone(),
                evidence: request.evidence.clone(),
            },
            None,
        )?;
        let answer = match self.prompter.as_ref().and_then(|p| p.ask(request)) {
            Some(a) => a,
            None => match self.unattended {
                Unattended::Wait => {
                    return Err(AgentError::AwaitingApproval {
                        id: request.id.clone(),
                        question: request.question.clone(),
                    });
                }
                Unattended::Reject => Answer {
                    approved: false,
                    by: Approver::Policy {
                        name: "--unattended reject".into(),
                    },
                    reason: "nobody was at the terminal; the unattended policy declines".into(),
                },
            },
        };
        if !answer.approved && answer.reason.trim().is_empty() {
            return Err(AgentError::Invalid {
                path: format!("approval {}", request.id),
                reason: "a rejection needs a reason".into(),
            });
        }
        rec.emit(
            it,
            &answer_step(&request.id),
            Event::ApprovalAnswered {
                approval_id: request.id.clone(),
                proposal_id: request.proposal_id.clone(),
                approved: answer.approved,
                by: answer.by.clone(),
                reason: answer.reason.clone(),
            },
            Some(parent),
        )?;
        Ok(answer)
    }
}

fn answer_step(id: &str) -> String {
    format!("approval/{id}/answer")
}

fn jerr(e: recloop_journal::JournalError) -> AgentError {
    AgentError::Journal(e.to_string())
}

fn approval_events(journal: &Journal) -> Result<Vec<EventRecord>> {
    journal
        .events(&EventFilter {
            types: vec!["approval_requested".into(), "approval_answered".into()],
            ..EventFilter::default()
        })
        .map_err(jerr)
}

/// The recorded answer of approval `id`, if any.
pub fn recorded_answer(journal: &Journal, id: &str) -> Result<Option<Answer>> {
    Ok(approval_events(journal)?
        .into_iter()
        .find_map(|r| match r.event {
            Event::ApprovalAnswered {
                approval_id,
                approved,
                by,
                reason,
                ..
            } if approval_id == id => Some(Answer {
                approved,
                by,
                reason,
            }),
            _ => None,
        }))
}

/// One approval as the journal holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalStatus {
    /// Approval id.
    pub id: String,
    /// Run that asked.
    pub run_id: String,
    /// Iteration that asked.
    pub iteration: u32,
    /// Proposal concerned.
    pub proposal_id: Option<String>,
    /// Why a person is needed.
    pub kind: ApprovalKind,
    /// The question.
    pub question: String,
    /// The evidence.
    pub evidence: serde_json::Value,
    /// The answer, once given: (approved, who, reason).
    pub answer: Option<(bool, String, String)>,
}

/// Every approval in the journal, oldest first, with its answer if it has one.
pub fn list(journal: &Journal) -> Result<Vec<ApprovalStatus>> {
    let mut out: Vec<ApprovalStatus> = Vec::new();
    for r in approval_events(journal)? {
        match r.event {
            Event::ApprovalRequested {
                approval_id,
                proposal_id,
                kind,
                question,
                evidence,
            } => out.push(ApprovalStatus {
                id: approval_id,
                run_id: r.run_id,
                iteration: r.iteration,
                proposal_id,
                kind,
                question,
                evidence,
                answer: None,
            }),
            Event::ApprovalAnswered {
                approval_id,
                approved,
                by,
                reason,
                ..
            } => {
                if let Some(a) = out.iter_mut().find(|a| a.id == approval_id) {
                    a.answer = Some((approved, by.to_string(), reason));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Answer pending approval `id` from outside the run (`recloop approve` / `recloop reject`).
/// A rejection needs a reason; an approval that is unknown or already answered is an error.
pub fn answer(
    journal: &Journal,
    id: &str,
    approved: bool,
    reason: &str,
    by: Approver,
) -> Result<ApprovalStatus> {
    let all = list(journal)?;
    let Some(status) = all.into_iter().find(|a| a.id == id) else {
        return Err(AgentError::NotFound(format!(
            "no approval {id:?} in the journal (`recloop approvals` lists them)"
        )));
    };
    if let Some((ok, who, _)) = &status.answer {
        return Err(AgentError::Invalid {
            path: format!("approval {id}"),
            reason: format!(
                "already answered: {} by {who}",
                if *ok { "approved" } else { "rejected" }
            ),
        });
    }
    if !approved && reason.trim().is_empty() {
        return Err(AgentError::Invalid {
            path: format!("approval {id}"),
            reason: "a rejection needs a reason (--why TEXT)".into(),
        });
    }
    let key = format!("{}/{}/{}", status.run_id, status.iteration, answer_step(id));
    journal
        .append(
            NewEvent::new(
                status.run_id.clone(),
                status.iteration,
                Event::ApprovalAnswered {
                    approval_id: id.to_string(),
                    proposal_id: status.proposal_id.clone(),
                    approved,
                    by: by.clone(),
                    reason: reason.to_string(),
                },
            )
            .key(key.clone())
            .with_id(crate::record::uuid_for(&key)),
        )
        .map_err(jerr)?;
    Ok(ApprovalStatus {
        answer: Some((approved, by.to_string(), reason.to_string())),
        ..status
    })
}

/// Proposals for which a person answered an approval (Q_code's human intervention).
pub fn answered_by_a_person(events: &[EventRecord]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ApprovalAnswered {
                proposal_id: Some(p),
                by,
                ..
            } if by.is_person() => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// A prompter that gives scripted answers in order, then `then` (tests and scripted runs; its
/// answers are recorded as a policy, never as a person).
pub struct ScriptedPrompter {
    answers: Mutex<VecDeque<bool>>,
    then: Option<bool>,
    asked: Mutex<Vec<ApprovalRequest>>,
}

impl ScriptedPrompter {
    /// Answers `answers` in order, then `then` (None: nobody answers).
    pub fn new(answers: &[bool], then: Option<bool>) -> ScriptedPrompter {
        ScriptedPrompter {
            answers: Mutex::new(answers.iter().copied().collect()),
            then,
            asked: Mutex::new(Vec::new()),
        }
    }

    /// Approves everything.
    pub fn approve_all() -> Arc<ScriptedPrompter> {
        Arc::new(ScriptedPrompter::new(&[], Some(true)))
    }

    /// The requests it was asked, in order.
    pub fn asked(&self) -> Vec<ApprovalRequest> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Prompter for ScriptedPrompter {
    fn ask(&self, request: &ApprovalRequest) -> Option<Answer> {
        if let Ok(mut a) = self.asked.lock() {
            a.push(request.clone());
        }
        let next = self.answers.lock().ok()?.pop_front().or(self.then)?;
        Some(Answer {
            approved: next,
            by: Approver::Policy {
                name: "scripted prompter".into(),
            },
            reason: if next {
                String::new()
            } else {
                "scripted rejection".into()
            },
        })
    }
}
