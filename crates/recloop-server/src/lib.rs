//! HTTP API and dashboard over the journal.
