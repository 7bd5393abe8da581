//! The append-only experiment journal, its views and the knowledge base.
