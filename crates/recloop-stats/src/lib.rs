//! A/B statistics and off-policy estimators over sufficient statistics.
