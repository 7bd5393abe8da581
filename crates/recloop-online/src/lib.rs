//! The experiment platform: assignment, ramps, health gate, harm veto and verdicts.
