//! Price table: US dollars per million input/output tokens, per model.
//!
//! Public list prices of the providers (standard tier, no caching or batch discounts). The table
//! carries a version so a journal can record which prices its dollar figures used. Model names are
//! matched by the longest known prefix, so dated names (`claude-sonnet-4-5-20250929`,
//! `gpt-4o-2024-08-06`) find their family; an optional `provider:` or `org/` prefix is ignored.
//! Unknown models (local servers, self-hosted) cost 0 and are flagged.

use serde::{Deserialize, Serialize};

/// Version of [`PRICE_TABLE`]; save it next to every dollar figure.
pub const PRICES_VERSION: &str = "2026-11-01";

/// Price of one model family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Model name prefix.
    pub prefix: &'static str,
    /// USD per 1M input tokens.
    pub input_per_mtok: f64,
    /// USD per 1M output tokens.
    pub output_per_mtok: f64,
}

const fn p(prefix: &'static str, input_per_mtok: f64, output_per_mtok: f64) -> ModelPrice {
    ModelPrice {
        prefix,
        input_per_mtok,
        output_per_mtok,
    }
}

/// The table (version [`PRICES_VERSION`]).
pub const PRICE_TABLE: &[ModelPrice] = &[
    // OpenAI
    p("gpt-5-nano", 0.05, 0.40),
    p("gpt-5-mini", 0.25, 2.00),
    p("gpt-5", 1.25, 10.00),
    p("gpt-4.1-nano", 0.10, 0.40),
    p("gpt-4.1-mini", 0.40, 1.60),
    p("gpt-4.1", 2.00, 8.00),
    p("gpt-4o-mini", 0.15, 0.60),
    p("gpt-4o", 2.50, 10.00),
    p("gpt-4-turbo", 10.00, 30.00),
    p("gpt-3.5-turbo", 0.50, 1.50),
    p("o4-mini", 1.10, 4.40),
    p("o3-mini", 1.10, 4.40),
    p("o3", 2.00, 8.00),
    p("o1-mini", 1.10, 4.40),
    p("o1", 15.00, 60.00),
    // Anthropic
    p("claude-opus-4-5", 5.00, 25.00),
    p("claude-opus-4-1", 15.00, 75.00),
    p("claude-opus-4", 15.00, 75.00),
    p("claude-sonnet-4", 3.00, 15.00),
    p("claude-haiku-4-5", 1.00, 5.00),
    p("claude-3-7-sonnet", 3.00, 15.00),
    p("claude-3-5-sonnet", 3.00, 15.00),
    p("claude-3-5-haiku", 0.80, 4.00),
    p("claude-3-opus", 15.00, 75.00),
    p("claude-3-haiku", 0.25, 1.25),
];

/// Strip `provider:` and `org/` prefixes.
fn bare_model_name(model: &str) -> &str {
    let after_provider = match model.split_once(':') {
        Some(("openai" | "anthropic" | "openai-compatible" | "local" | "scripted", rest)) => rest,
        _ => model,
    };
    after_provider.rsplit('/').next().unwrap_or(after_provider)
}

/// The price of `model`, or `None` when the table does not know it.
pub fn price_of(model: &str) -> Option<ModelPrice> {
    let name = bare_model_name(model).to_ascii_lowercase();
    PRICE_TABLE
        .iter()
        .filter(|p| name.starts_with(p.prefix))
        .max_by_key(|p| p.prefix.len())
        .copied()
}

/// Cost in USD of `input` and `output` tokens on `model`, and whether the model was priced
/// (`false`: unknown model, cost 0).
pub fn cost_usd(model: &str, input: u64, output: u64) -> (f64, bool) {
    match price_of(model) {
        Some(p) => (
            (input as f64 * p.input_per_mtok + output as f64 * p.output_per_mtok) / 1e6,
            true,
        ),
        None => (0.0, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_prefixes_are_stripped() {
        assert_eq!(
            price_of("gpt-4o-mini-2024-07-18").unwrap().prefix,
            "gpt-4o-mini"
        );
        assert_eq!(price_of("gpt-4o-2024-08-06").unwrap().prefix, "gpt-4o");
        assert_eq!(
            price_of("anthropic:claude-sonnet-4-5-20250929")
                .unwrap()
                .prefix,
            "claude-sonnet-4"
        );
        assert_eq!(price_of("openai/gpt-5-mini").unwrap().prefix, "gpt-5-mini");
        assert!(price_of("llama3.1:8b").is_none());
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let (c, known) = cost_usd("gpt-4o", 1_000_000, 100_000);
        assert!(known);
        assert!((c - 3.5).abs() < 1e-9, "{c}");
        assert_eq!(cost_usd("mystery-model", 10, 10), (0.0, false));
    }
}
