//! Typed errors: every error names the request field that was wrong.

/// An error from a statistics computation, naming the offending input field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// An input value is missing, out of range or inconsistent.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `control.n`.
        field: String,
        /// What was wrong with it.
        message: String,
    },
}

impl StatsError {
    /// An invalid-input error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StatsError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The dotted path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            StatsError::Invalid { field, .. } => field,
        }
    }

    /// The human-readable message without the field.
    pub fn message(&self) -> &str {
        match self {
            StatsError::Invalid { message, .. } => message,
        }
    }

    /// Prefix the field path with `parent` (e.g. `n` becomes `control.n`).
    pub fn within(self, parent: &str) -> Self {
        match self {
            StatsError::Invalid { field, message } => StatsError::Invalid {
                field: if field.is_empty() {
                    parent.to_string()
                } else {
                    format!("{parent}.{field}")
                },
                message,
            },
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StatsError>;

/// Require a finite value.
pub(crate) fn finite(field: &str, x: f64) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(StatsError::invalid(
            field,
            format!("must be a finite number, got {x}"),
        ))
    }
}

/// Require a finite, non-negative value.
pub(crate) fn non_negative(field: &str, x: f64) -> Result<f64> {
    let x = finite(field, x)?;
    if x < 0.0 {
        Err(StatsError::invalid(field, format!("must be ≥ 0, got {x}")))
    } else {
        Ok(x)
    }
}

/// Require a probability strictly inside (0, 1).
pub(crate) fn open_probability(field: &str, x: f64) -> Result<f64> {
    let x = finite(field, x)?;
    if x <= 0.0 || x >= 1.0 {
        Err(StatsError::invalid(
            field,
            format!("must lie strictly between 0 and 1, got {x}"),
        ))
    } else {
        Ok(x)
    }
}

/// Require a probability in [0, 1].
pub(crate) fn probability(field: &str, x: f64) -> Result<f64> {
    let x = finite(field, x)?;
    if !(0.0..=1.0).contains(&x) {
        Err(StatsError::invalid(
            field,
            format!("must lie in [0, 1], got {x}"),
        ))
    } else {
        Ok(x)
    }
}

/// Require that a computed value is finite (guards against NaN in results).
pub(crate) fn computed(field: &str, x: f64) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(StatsError::invalid(
            field,
            format!(
                "the inputs lead to a non-finite result ({x}); check for zero variances or zero means"
            ),
        ))
    }
}
