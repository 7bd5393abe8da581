//! Q_code of a candidate from the journal: the dimensions Develop measured (recorded with the
//! candidate) plus the human intervention that the approval records show.

use recloop_core::CodeQuality;
use recloop_journal::{Event, EventRecord};

/// A candidate's Q_code with its dimensions, for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityReport {
    /// The dimensions.
    pub quality: CodeQuality,
}

impl std::fmt::Display for QualityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = &self.quality;
        write!(
            f,
            "{:.2} (hallucinated fields {}, gate repairs {}, repair rounds {}, human intervention {}, dry run {})",
            q.score(),
            q.hallucinated_fields,
            q.gate_repairs,
            q.repair_rounds,
            if q.human_intervention { "yes" } else { "no" },
            match (q.dry_run_ran, q.dry_run_passed) {
                (false, _) => "not run",
                (true, true) => "passed",
                (true, false) => "failed",
            }
        )
    }
}

/// Q_code of the candidate in one experiment's lineage (None when no candidate was ready):
/// its recorded dimensions, with human intervention set when a person answered an approval
/// about it.
pub fn of_experiment(lineage: &[EventRecord]) -> Option<QualityReport> {
    let mut quality = lineage.iter().find_map(|r| match &r.event {
        Event::CandidateReady { candidate } => Some(candidate.quality),
        _ => None,
    })?;
    quality.human_intervention |= !crate::approvals::answered_by_a_person(lineage).is_empty();
    Some(QualityReport { quality })
}
