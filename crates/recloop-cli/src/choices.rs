//! The enumerated values of command-line flags, as `clap::ValueEnum`s so that `--help` lists
//! them, each mapped onto the library type it selects.

use clap::ValueEnum;
use recloop_rec::data::DatasetName;
use recloop_rec::pipeline::EvalSplit;
use recloop_rec::split::Protocol;

/// `--split`: which part of the data to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The validation split (agents see these numbers).
    Validation,
    /// The sealed holdout.
    Holdout,
}

impl From<SplitArg> for EvalSplit {
    fn from(s: SplitArg) -> EvalSplit {
        match s {
            SplitArg::Validation => EvalSplit::Validation,
            SplitArg::Holdout => EvalSplit::Holdout,
        }
    }
}

/// `--protocol`: how ratings are split into train, validation and holdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Per-user random 80/20; half the users' 20 % is validation, the others' holdout.
    A,
    /// RecBole-GNN replica: ratings ≥ 3, per-user 80/10/10.
    B,
    /// Per-user temporal leave-last-out.
    Temporal,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Protocol {
        match p {
            ProtocolArg::A => Protocol::A,
            ProtocolArg::B => Protocol::B,
            ProtocolArg::Temporal => Protocol::Temporal,
        }
    }
}

/// `--dataset` of the model benchmark: a MovieLens dataset (fetched on first use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RatingsDatasetArg {
    /// MovieLens-100K.
    #[value(name = "ml-100k")]
    Ml100k,
    /// MovieLens-1M.
    #[value(name = "ml-1m")]
    Ml1m,
}

impl From<RatingsDatasetArg> for DatasetName {
    fn from(d: RatingsDatasetArg) -> DatasetName {
        match d {
            RatingsDatasetArg::Ml100k => DatasetName::Ml100k,
            RatingsDatasetArg::Ml1m => DatasetName::Ml1m,
        }
    }
}

/// `--world`: the simulated world when no workspace grounds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorldArg {
    /// Fitted on MovieLens-1M (fetched on first use).
    #[value(name = "ml-1m")]
    Ml1m,
    /// A small synthetic world (2,000 users, 1,500 items).
    Synthetic,
}

/// `--provider`: which language-model provider to talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// OpenAI's API.
    Openai,
    /// Anthropic's API.
    Anthropic,
    /// Any server speaking OpenAI's chat API (`--base-url`).
    OpenaiCompatible,
    /// A GGUF model run in this process (cargo feature `local`).
    Local,
    /// Answers read from a turns file (`--model FILE`), for tests.
    Scripted,
    /// Answers replayed from recorded cassettes.
    Replay,
}

impl ProviderArg {
    /// The provider's name in `recloop.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderArg::Openai => "openai",
            ProviderArg::Anthropic => "anthropic",
            ProviderArg::OpenaiCompatible => "openai-compatible",
            ProviderArg::Local => "local",
            ProviderArg::Scripted => "scripted",
            ProviderArg::Replay => "replay",
        }
    }
}

/// `--example`: a built-in example workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExampleArg {
    /// The built-in recommender on MovieLens (pipeline.toml, Rhai scoring script).
    Movielens,
    /// A Python/numpy matrix factorisation with its own evaluation and a declared search space.
    PythonMf,
}

impl ExampleArg {
    /// The example's name in `recloop_rec::example::EXAMPLES`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExampleArg::Movielens => "movielens",
            ExampleArg::PythonMf => "python-mf",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_the_ones_the_library_writes() {
        let names: Vec<&str> = ExampleArg::value_variants()
            .iter()
            .map(|e| e.as_str())
            .collect();
        assert_eq!(names, recloop_rec::example::EXAMPLES);
    }

    #[test]
    fn providers_are_the_ones_the_router_knows() {
        let names: Vec<&str> = ProviderArg::value_variants()
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(names, recloop_llm::router::PROVIDERS);
        for p in ProviderArg::value_variants() {
            let shown = p.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(shown.as_deref(), Some(p.as_str()));
        }
    }
}
