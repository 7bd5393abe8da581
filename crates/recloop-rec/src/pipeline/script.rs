//! The optional Rhai scoring script: `fn score(item, user)` returns each candidate's final score.
//!
//! The engine is sandboxed: built from `Engine::new_raw()` (no module resolver, so no `import` of
//! files; `print`/`debug` go nowhere), with only the core, logic, math, array, map and string
//! packages (no time functions, so scores are deterministic), `eval` disabled, and limits on
//! operations per call, string/array/map sizes, call depth and expression depth.
//!
//! What the script sees (per candidate item, per user):
//!
//! - `item.id` (int), `item.score` (the blended score, float), `item.scores` (map: model name →
//!   that model's normalised score), `item.popularity` (training interactions, int),
//!   `item.mean_rating` (float; 0.0 when the dataset has no ratings), `item.genres` (array of
//!   strings), `item.year` (int; 0 when unknown);
//! - `user.id` (int), `user.activity` (training interactions of the user, int).
//!
//! It must return a number (int or float); NaN or infinity is an error.

use crate::error::{RecError, Result};
use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage,
    MoreStringPackage, Package,
};
use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Position, Scope};
use std::path::{Path, PathBuf};

/// Operations one call of `score` may use.
pub const MAX_OPERATIONS: u64 = 50_000;
/// Longest string a script may build.
pub const MAX_STRING_SIZE: usize = 4_096;
/// Largest array a script may build.
pub const MAX_ARRAY_SIZE: usize = 1_024;
/// Largest map a script may build.
pub const MAX_MAP_SIZE: usize = 256;
/// Deepest function-call nesting.
pub const MAX_CALL_LEVELS: usize = 16;

/// A compiled scoring script.
pub struct ScoringScript {
    engine: Engine,
    ast: AST,
    origin: PathBuf,
}

impl std::fmt::Debug for ScoringScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringScript")
            .field("origin", &self.origin)
            .finish()
    }
}

fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new_raw();
    for package in [
        CorePackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(package);
    }
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 32)
        .set_max_variables(256)
        .set_max_functions(64)
        .set_max_modules(0)
        .disable_symbol("eval");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine
}

fn location(origin: &Path, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", origin.display()),
        (Some(l), None) => format!("{}:{l}", origin.display()),
        _ => origin.display().to_string(),
    }
}

impl ScoringScript {
    /// Read and compile the script at `path` (shown in errors as `origin`).
    pub fn load(path: &Path, origin: &Path) -> Result<ScoringScript> {
        let text = std::fs::read_to_string(path).map_err(|source| RecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ScoringScript::compile(&text, origin)
    }

    /// Compile script text; it must define `fn score(item, user)`.
    pub fn compile(text: &str, origin: &Path) -> Result<ScoringScript> {
        let engine = sandboxed_engine();
        let ast = engine.compile(text).map_err(|e| RecError::Spec {
            location: location(origin, e.position()),
            reason: format!("script syntax error: {}", e.err_type()),
        })?;
        let has_score = ast
            .iter_functions()
            .any(|f| f.name == "score" && f.params.len() == 2);
        if !has_score {
            return Err(RecError::Spec {
                location: origin.display().to_string(),
                reason: "the script must define `fn score(item, user)` returning a number".into(),
            });
        }
        Ok(ScoringScript {
            engine,
            ast,
            origin: origin.to_path_buf(),
        })
    }

    /// Where the script came from (as shown in errors).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Call `score(item, user)` once.
    pub fn score(&self, item: Map, user: Map) -> Result<f64> {
        let mut scope = Scope::new();
        let mut options = CallFnOptions::new();
        options.eval_ast = false;
        options.rewind_scope = true;
        let value: Dynamic = self
            .engine
            .call_fn_with_options(options, &mut scope, &self.ast, "score", (item, user))
            .map_err(|e| self.runtime_error(&e))?;
        let number = if let Ok(f) = value.as_float() {
            f
        } else if let Ok(i) = value.as_int() {
            i as f64
        } else {
            return Err(RecError::Spec {
                location: self.origin.display().to_string(),
                reason: format!(
                    "`score` must return a number, it returned a value of type {}",
                    value.type_name()
                ),
            });
        };
        if !number.is_finite() {
            return Err(RecError::Spec {
                location: self.origin.display().to_string(),
                reason: format!("`score` returned {number}, not a finite number"),
            });
        }
        Ok(number)
    }

    fn runtime_error(&self, e: &EvalAltResult) -> RecError {
        // Errors inside a script function are wrapped: report the innermost position and reason.
        let mut inner = e;
        while let EvalAltResult::ErrorInFunctionCall(_, _, err, _) = inner {
            inner = err;
        }
        let reason = match inner {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "script exceeded the limit of {MAX_OPERATIONS} operations per call of `score`"
            ),
            other => format!("script runtime error: {other}"),
        };
        let pos = if inner.position().is_none() {
            e.position()
        } else {
            inner.position()
        };
        RecError::Spec {
            location: location(&self.origin, pos),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(score: f64) -> Map {
        let mut m = Map::new();
        m.insert("score".into(), Dynamic::from_float(score));
        m.insert("popularity".into(), Dynamic::from_int(10));
        m
    }

    #[test]
    fn computes_a_score() {
        let s = ScoringScript::compile(
            "fn score(item, user) { item.score - 0.1 * ln(1.0 + item.popularity) }",
            Path::new("scripts/score.rhai"),
        )
        .unwrap();
        let v = s.score(item(1.0), Map::new()).unwrap();
        assert!((v - (1.0 - 0.1 * 11f64.ln())).abs() < 1e-12);
    }

    #[test]
    fn integer_results_are_accepted() {
        let s = ScoringScript::compile("fn score(item, user) { 3 }", Path::new("s.rhai")).unwrap();
        assert_eq!(s.score(item(0.0), Map::new()).unwrap(), 3.0);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let text = "// starter\nfn score(item, user) {\n  let x = item.score +;\n  x\n}\n";
        let e = ScoringScript::compile(text, Path::new("scripts/score.rhai")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("scripts/score.rhai:3:"), "{msg}");
        assert!(msg.contains("syntax error"), "{msg}");
    }

    #[test]
    fn missing_score_function_is_reported() {
        let e = ScoringScript::compile("fn rank(a) { 1.0 }", Path::new("s.rhai")).unwrap_err();
        assert!(e.to_string().contains("fn score(item, user)"), "{e}");
    }

    #[test]
    fn operation_limit_fails_cleanly() {
        let text = "fn score(item, user) {\n  let s = 0;\n  loop { s += 1; }\n}\n";
        let s = ScoringScript::compile(text, Path::new("scripts/slow.rhai")).unwrap();
        let msg = s.score(item(1.0), Map::new()).unwrap_err().to_string();
        assert!(msg.starts_with("scripts/slow.rhai"), "{msg}");
        assert!(msg.contains("operations"), "{msg}");
    }

    #[test]
    fn runtime_error_names_line() {
        let text = "fn score(item, user) {\n  item.score + \"x\" * 2\n}\n";
        let s = ScoringScript::compile(text, Path::new("s.rhai")).unwrap();
        let msg = s.score(item(1.0), Map::new()).unwrap_err().to_string();
        assert!(msg.starts_with("s.rhai:2"), "{msg}");
    }

    #[test]
    fn non_numbers_and_nan_are_rejected() {
        let s = ScoringScript::compile("fn score(item, user) { \"high\" }", Path::new("s.rhai"))
            .unwrap();
        assert!(
            s.score(item(1.0), Map::new())
                .unwrap_err()
                .to_string()
                .contains("number")
        );
        let s = ScoringScript::compile("fn score(item, user) { 0.0 / 0.0 }", Path::new("s.rhai"))
            .unwrap();
        assert!(s.score(item(1.0), Map::new()).is_err());
    }

    #[test]
    fn no_eval_and_no_import() {
        assert!(
            ScoringScript::compile("fn score(item, user) { eval(\"1\") }", Path::new("s.rhai"))
                .is_err()
        );
        let s = ScoringScript::compile(
            "fn score(item, user) { import \"x\" as y; 1.0 }",
            Path::new("s.rhai"),
        );
        match s {
            Err(_) => {}
            Ok(s) => assert!(s.score(item(1.0), Map::new()).is_err()),
        }
    }

    #[test]
    fn huge_strings_are_stopped() {
        let text = "fn score(item, user) { let s = \"x\"; for i in 0..20 { s += s; } 1.0 }";
        let s = ScoringScript::compile(text, Path::new("s.rhai")).unwrap();
        assert!(s.score(item(1.0), Map::new()).is_err());
    }
}
