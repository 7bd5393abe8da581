//! Built-in example workspaces: their files (`recloop init --example NAME DIR` writes them and
//! commits them; the git part lives with the loop's git layer in `recloop-agents`).

use crate::error::{RecError, Result};
use std::path::Path;

/// Names of the built-in examples.
pub const EXAMPLES: [&str; 2] = ["movielens", "python-mf"];

/// The files of the MovieLens example: (relative path, contents).
const MOVIELENS: [(&str, &str); 6] = [
    ("recloop.toml", include_str!("movielens/recloop.toml")),
    ("pipeline.toml", include_str!("movielens/pipeline.toml")),
    (
        "scripts/score.rhai",
        include_str!("movielens/scripts/score.rhai"),
    ),
    ("eval/eval.toml", include_str!("movielens/eval/eval.toml")),
    ("README.md", include_str!("movielens/README.md")),
    ("notes/README.md", include_str!("movielens/notes/README.md")),
];

/// The files of the Python example (`examples/python-mf` of the repository): a numpy matrix
/// factorisation with its own evaluation command and a declared search space.
const PYTHON_MF: [(&str, &str); 8] = [
    (
        "recloop.toml",
        include_str!("../../../../examples/python-mf/recloop.toml"),
    ),
    (
        "params.json",
        include_str!("../../../../examples/python-mf/params.json"),
    ),
    (
        "data.py",
        include_str!("../../../../examples/python-mf/data.py"),
    ),
    (
        "mf.py",
        include_str!("../../../../examples/python-mf/mf.py"),
    ),
    (
        "eval.py",
        include_str!("../../../../examples/python-mf/eval.py"),
    ),
    (
        "test_mf.py",
        include_str!("../../../../examples/python-mf/test_mf.py"),
    ),
    (
        "README.md",
        include_str!("../../../../examples/python-mf/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../../examples/python-mf/.gitignore"),
    ),
];

/// How an example differs from its defaults (tests and benchmarks use smaller data and decide
/// offline; `recloop init --dataset` picks the dataset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExampleOptions {
    /// Dataset of `eval/eval.toml` instead of `ml-1m` (`ml-100k`, `ml-1m`, `synthetic`).
    pub dataset: Option<String>,
    /// Size (users, items) of the synthetic dataset, when the dataset is `synthetic`.
    pub synthetic: Option<(usize, usize)>,
    /// `[online] platform` instead of `simulator` (e.g. `none`: decide offline).
    pub platform: Option<String>,
    /// Without the `[[personas]]`: one generalist Brainstorm.
    pub generalist: bool,
}

/// Where the MovieLens example's `[[personas]]` begin (the rest of its `recloop.toml`).
const PERSONAS_BLOCK: &str = "\n# Brainstorm personas";

/// The example's files as `name`'s defaults changed by `opts`: (relative path, contents).
pub fn example_files(name: &str, opts: &ExampleOptions) -> Result<Vec<(&'static str, String)>> {
    let files = match name {
        "movielens" => &MOVIELENS[..],
        "python-mf" => &PYTHON_MF[..],
        other => {
            return Err(RecError::Spec {
                location: "--example".into(),
                reason: format!(
                    "unknown example {other:?} (available: {})",
                    EXAMPLES.join(", ")
                ),
            });
        }
    };
    if name != "movielens" && (opts.dataset.is_some() || opts.synthetic.is_some()) {
        return Err(RecError::Spec {
            location: "--dataset".into(),
            reason: format!(
                "the {name} example brings its own data; --dataset applies to movielens"
            ),
        });
    }
    if let Some(d) = &opts.dataset
        && !super::pipeline::config::DATASETS.contains(&d.as_str())
    {
        return Err(RecError::Spec {
            location: "--dataset".into(),
            reason: format!(
                "unknown dataset {d:?} (expected one of {})",
                super::pipeline::config::DATASETS.join(", ")
            ),
        });
    }
    let mut out = Vec::new();
    for &(rel, text) in files.iter() {
        let text = match rel {
            "eval/eval.toml" => {
                let mut text = text.to_string();
                if let Some(d) = &opts.dataset {
                    text =
                        replace_once(&text, "dataset = \"ml-1m\"", &format!("dataset = \"{d}\""))?;
                }
                if let Some((users, items)) = opts.synthetic {
                    text.push_str(&format!(
                        "\n[synthetic]\nusers = {users}\nitems = {items}\n"
                    ));
                }
                text
            }
            "recloop.toml" => {
                let mut text = match &opts.platform {
                    Some(p) => replace_once(
                        text,
                        "platform = \"simulator\"",
                        &format!("platform = \"{p}\""),
                    )?,
                    None => text.to_string(),
                };
                if opts.generalist
                    && let Some(at) = text.find(PERSONAS_BLOCK)
                {
                    text.truncate(at + 1);
                }
                text
            }
            _ => text.to_string(),
        };
        out.push((rel, text));
    }
    Ok(out)
}

/// `text` with its one occurrence of `from` replaced (an error names the missing line, so an
/// edit of the example's files cannot silently drop an option).
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    if text.matches(from).count() != 1 {
        return Err(RecError::Spec {
            location: "example".into(),
            reason: format!("the example file must contain `{from}` exactly once"),
        });
    }
    Ok(text.replacen(from, to, 1))
}

/// Write example `name` into `dir` (created if missing; must be empty if it exists).
pub fn write_example(name: &str, dir: &Path, opts: &ExampleOptions) -> Result<()> {
    let files = example_files(name, opts)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecError::Io { path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(RecError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "directory is not empty; refusing to overwrite it",
                ),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}
