//! The simulated online world: users, sessions, satisfaction and retention.
