//! The built-in brain over a declared search space (`[[search.params]]` in `recloop.toml`): any
//! workspace, in any language, whose tunable values live in its TOML, JSON or YAML files. TPE
//! proposes assignments of the declared parameters; Develop writes each changed value as a delta
//! of its file (comments and formatting kept, see [`crate::config_edit`]).

use crate::config_edit;
use crate::error::{AgentError, Result};
use crate::history::{History, Trial};
use crate::space::{Coord, Range};
use crate::tpe::{Observation, Tpe};
use rand::Rng;
use rand_pcg::Pcg64Mcg;
use recloop_core::{SearchParam, manifest::SearchSection};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Values of the declared parameters by name (absent: the parameter's condition is not met).
pub type Assignment = BTreeMap<String, Value>;

/// The declared search space of a workspace.
#[derive(Debug, Clone)]
pub struct DeclaredSpace<'a> {
    params: &'a [SearchParam],
}

impl<'a> DeclaredSpace<'a> {
    /// The space `[search]` declares, or `None` when it declares no parameter.
    pub fn of(search: &'a SearchSection) -> Option<DeclaredSpace<'a>> {
        (!search.params.is_empty()).then_some(DeclaredSpace {
            params: &search.params,
        })
    }

    /// The declared parameters.
    pub fn params(&self) -> &[SearchParam] {
        self.params
    }

    /// Whether `p` exists under assignment `a` (its condition, if any, holds).
    fn active(&self, a: &Assignment, p: &SearchParam) -> bool {
        p.when
            .as_ref()
            .is_none_or(|w| a.get(&w.param) == Some(&w.equals))
    }

    /// The current values in the checkout at `dir`. A parameter whose condition holds must be
    /// present in its file.
    pub fn read(&self, dir: &Path) -> Result<Assignment> {
        let mut a = Assignment::new();
        let mut texts: BTreeMap<&str, String> = BTreeMap::new();
        for p in self.params {
            let text = match texts.get(p.file.as_str()) {
                Some(t) => t,
                None => {
                    let path = dir.join(&p.file);
                    let t = std::fs::read_to_string(&path).map_err(|e| AgentError::io(&path, e))?;
                    texts.entry(p.file.as_str()).or_insert(t)
                }
            };
            let v = config_edit::read_value(&p.file, text, &p.key)?;
            if let Some(v) = v {
                a.insert(p.label().to_string(), v);
            }
        }
        let inactive: Vec<String> = self
            .params
            .iter()
            .filter(|p| !self.active(&a, p))
            .map(|p| p.label().to_string())
            .collect();
        for name in inactive {
            a.remove(&name);
        }
        for p in self.params {
            if self.active(&a, p) && !a.contains_key(p.label()) {
                return Err(AgentError::Invalid {
                    path: p.file.clone(),
                    reason: format!(
                        "[search] parameter `{}` names key `{}`, which the file does not have",
                        p.label(),
                        p.key
                    ),
                });
            }
        }
        Ok(a)
    }

    fn range(p: &SearchParam) -> Option<Range> {
        Some(Range {
            lo: p.min?,
            hi: p.max?,
            log: p.log,
            integer: p.integer,
        })
    }

    fn value_of(p: &SearchParam, u: f64) -> Value {
        match Self::range(p) {
            Some(r) => {
                let v = r.from_unit(u);
                if p.integer {
                    Value::from(v as i64)
                } else {
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
                }
            }
            None => Value::Null,
        }
    }

    /// Search coordinates of `a`: numbers in [0, 1], choices as categories.
    pub fn features(&self, a: &Assignment) -> BTreeMap<String, Coord> {
        let mut f = BTreeMap::new();
        for p in self.params {
            let Some(v) = a.get(p.label()) else { continue };
            let c = match (Self::range(p), v.as_f64()) {
                (Some(r), Some(x)) => Coord::Num(r.to_unit(x)),
                _ => Coord::Cat(v.to_string()),
            };
            f.insert(p.label().to_string(), c);
        }
        f
    }

    /// A stable hash of an assignment (what "the same experiment" means in this space).
    pub fn hash(a: &Assignment) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(a).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// A neighbour of `base`: one active parameter moved by at most `max_step` in unit
    /// coordinates (a numeric one) or switched (a choice). Returns the parameter's name.
    fn local<R: Rng>(&self, base: &Assignment, rng: &mut R, max_step: f64) -> (Assignment, String) {
        let active: Vec<&SearchParam> = self
            .params
            .iter()
            .filter(|p| self.active(base, p))
            .collect();
        let p = active[rng.random_range(0..active.len())];
        let mut a = base.clone();
        let new = match Self::range(p) {
            Some(r) => {
                let u = base
                    .get(p.label())
                    .and_then(Value::as_f64)
                    .map_or(0.5, |x| r.to_unit(x));
                let step = (rng.random::<f64>() * 2.0 - 1.0) * max_step;
                let mut v = Self::value_of(p, u + step);
                if Some(&v) == base.get(p.label()) {
                    v = Self::value_of(p, u + max_step.copysign(step).max(-1.0));
                }
                v
            }
            None => {
                // another choice than the current one (validation guarantees two or more)
                let others: Vec<&Value> = p
                    .choices
                    .iter()
                    .filter(|c| base.get(p.label()) != Some(*c))
                    .collect();
                others[rng.random_range(0..others.len())].clone()
            }
        };
        a.insert(p.label().to_string(), new);
        self.fill_conditions(&mut a, base, rng);
        (a, p.label().to_string())
    }

    /// A point drawn uniformly over the whole space.
    fn global<R: Rng>(&self, base: &Assignment, rng: &mut R) -> Assignment {
        let mut a = Assignment::new();
        for p in self.params.iter().filter(|p| p.when.is_none()) {
            a.insert(p.label().to_string(), self.draw(p, rng));
        }
        self.fill_conditions(&mut a, base, rng);
        a
    }

    fn draw<R: Rng>(&self, p: &SearchParam, rng: &mut R) -> Value {
        match Self::range(p) {
            Some(_) => Self::value_of(p, rng.random::<f64>()),
            None => p.choices[rng.random_range(0..p.choices.len())].clone(),
        }
    }

    /// Conditional parameters: drop those whose condition no longer holds, and give those that
    /// became active a value (the base's, else a draw).
    fn fill_conditions<R: Rng>(&self, a: &mut Assignment, base: &Assignment, rng: &mut R) {
        for p in self.params.iter().filter(|p| p.when.is_some()) {
            if self.active(a, p) {
                if !a.contains_key(p.label()) {
                    let v = base
                        .get(p.label())
                        .cloned()
                        .unwrap_or_else(|| self.draw(p, rng));
                    a.insert(p.label().to_string(), v);
                }
            } else {
                a.remove(p.label());
            }
        }
    }

    /// The parameters whose values differ between `base` and `new` (present in `new`).
    pub fn changed(&self, base: &Assignment, new: &Assignment) -> Vec<&SearchParam> {
        self.params
            .iter()
            .filter(|p| {
                new.get(p.label())
                    .is_some_and(|v| base.get(p.label()) != Some(v))
            })
            .collect()
    }

    /// The file edits that give the values of `new` that differ from the files in `dir`: one
    /// (file, old text, new text) per file, each new text a delta of the old.
    pub fn deltas(&self, dir: &Path, new: &Assignment) -> Result<Vec<(String, String, String)>> {
        let current = self.read(dir)?;
        let mut by_file: BTreeMap<&str, Vec<&SearchParam>> = BTreeMap::new();
        for p in self.changed(&current, new) {
            by_file.entry(p.file.as_str()).or_default().push(p);
        }
        let mut out = Vec::new();
        for (file, params) in by_file {
            let path = dir.join(file);
            let old = std::fs::read_to_string(&path).map_err(|e| AgentError::io(&path, e))?;
            let mut text = old.clone();
            for p in params {
                if let Some(v) = new.get(p.label()) {
                    text = config_edit::set_value(file, &text, &p.key, v)?;
                }
            }
            out.push((file.to_string(), old, text));
        }
        Ok(out)
    }
}

/// The assignment a trial proposed (`change.assignment`), if it came from a declared space.
pub fn trial_assignment(t: &Trial) -> Option<Assignment> {
    let v = t.proposal.change.get("assignment")?;
    serde_json::from_value(v.clone()).ok()
}

/// What TPE learns from in a declared space (see [`crate::tpe::observations`]).
pub fn observations(space: &DeclaredSpace<'_>, history: &History, sign: f64) -> Vec<Observation> {
    crate::tpe::observations(history, sign, |t| {
        trial_assignment(t).map(|a| space.features(&a))
    })
}

/// How a slot of the batch searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// One parameter, a small step from production.
    Local,
    /// Anywhere in the space.
    Global,
}

/// A chosen assignment with its expected objective in [0, 1].
pub struct DeclaredChoice {
    /// The full assignment.
    pub assignment: Assignment,
    /// The parameter moved (local) or `"several"`.
    pub lever: String,
    /// Expected objective (TPE's score through a logistic, or a prior).
    pub objective: f64,
    /// Signed step in unit coordinates for a single numeric move (for bisection), else 0.
    pub direction: i64,
    /// Size of that step.
    pub step: f64,
}

/// Draw up to `samples` candidates of `reach` around `base`, skip assignments in `avoid` and
/// directions that failed with at least this step (`avoid_dirs`: (base hash, lever, direction)
/// → the largest step still worth trying) and levers (`search.<param>`, or `search.several`)
/// outside `in_scope` (a persona's scope), and keep the best by TPE (random search: the first).
#[allow(clippy::too_many_arguments)]
pub fn choose(
    space: &DeclaredSpace<'_>,
    base: &Assignment,
    reach: Reach,
    tpe: Option<&Tpe>,
    samples: usize,
    avoid: &BTreeSet<String>,
    avoid_dirs: &BTreeMap<(String, String, i64), f64>,
    in_scope: &dyn Fn(&str) -> bool,
    rng: &mut Pcg64Mcg,
) -> Option<DeclaredChoice> {
    let base_hash = DeclaredSpace::hash(base);
    let mut best: Option<DeclaredChoice> = None;
    let mut found = 0;
    for _ in 0..samples.max(1) * 20 {
        if found >= samples.max(1) {
            break;
        }
        let (a, lever) = match reach {
            Reach::Local => space.local(base, rng, 0.25),
            Reach::Global => (space.global(base, rng), "several".to_string()),
        };
        if avoid.contains(&DeclaredSpace::hash(&a))
            || a == *base
            || !in_scope(&format!("search.{lever}"))
        {
            continue;
        }
        let (direction, step) = single_move(space, base, &a);
        if direction != 0
            && avoid_dirs
                .get(&(base_hash.clone(), format!("search.{lever}"), direction))
                .is_some_and(|&limit| step >= limit)
        {
            continue;
        }
        found += 1;
        let objective = match tpe {
            Some(t) => 1.0 / (1.0 + (-t.score(&space.features(&a)) / 2.0).exp()),
            None => 0.5 + 0.05 * rng.random::<f64>(),
        };
        if best.as_ref().is_none_or(|b| objective > b.objective) {
            best = Some(DeclaredChoice {
                assignment: a,
                lever,
                objective,
                direction,
                step,
            });
        }
    }
    best
}

/// Direction (+1/-1) and unit step of a move that changes one numeric parameter; (0, 0) else.
fn single_move(space: &DeclaredSpace<'_>, base: &Assignment, new: &Assignment) -> (i64, f64) {
    let changed = space.changed(base, new);
    let [p] = changed.as_slice() else {
        return (0, 0.0);
    };
    let (Some(r), Some(x0), Some(x1)) = (
        DeclaredSpace::range(p),
        base.get(p.label()).and_then(Value::as_f64),
        new.get(p.label()).and_then(Value::as_f64),
    ) else {
        return (0, 0.0);
    };
    let d = r.to_unit(x1) - r.to_unit(x0);
    (if d > 0.0 { 1 } else { -1 }, d.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn section() -> SearchSection {
        toml::from_str(
            r#"
[[params]]
file = "params.json"
key = "factors"
min = 2
max = 64
log = true
integer = true

[[params]]
name = "solver"
file = "conf.toml"
key = "model.solver"
choices = ["als", "sgd"]

[[params]]
name = "lr"
file = "conf.toml"
key = "model.lr"
min = 0.001
max = 0.1
log = true
when = { param = "solver", equals = "sgd" }
"#,
        )
        .unwrap()
    }

    fn workspace() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("params.json"), "{\n  \"factors\": 8\n}\n").unwrap();
        std::fs::write(
            d.path().join("conf.toml"),
            "# model\n[model]\nsolver = \"als\" # which solver\nlr = 0.01\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn a_persona_moves_only_the_parameters_in_its_scope() {
        let s = section();
        let space = DeclaredSpace::of(&s).unwrap();
        let ws = workspace();
        let base = space.read(ws.path()).unwrap();
        let only_factors = |lever: &str| lever == "search.factors";
        for seed in 0..20 {
            let mut rng = Pcg64Mcg::seed_from_u64(seed);
            let (avoid, dirs) = (BTreeSet::new(), BTreeMap::new());
            let local = choose(
                &space,
                &base,
                Reach::Local,
                None,
                8,
                &avoid,
                &dirs,
                &only_factors,
                &mut rng,
            )
            .unwrap();
            assert_eq!(local.lever, "factors");
            assert_eq!(local.assignment["solver"], base["solver"]);
            // a move of several parameters is not in this scope
            let global = choose(
                &space,
                &base,
                Reach::Global,
                None,
                8,
                &avoid,
                &dirs,
                &only_factors,
                &mut rng,
            );
            assert!(global.is_none());
        }
    }

    #[test]
    fn reads_samples_and_writes_deltas_with_conditions() {
        let s = section();
        let space = DeclaredSpace::of(&s).unwrap();
        let ws = workspace();
        let base = space.read(ws.path()).unwrap();
        assert_eq!(base["factors"], Value::from(8));
        assert_eq!(base["solver"], Value::from("als"));
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for _ in 0..50 {
            let a = space.global(&base, &mut rng);
            let f = a["factors"].as_i64().unwrap();
            assert!((2..=64).contains(&f), "{a:?}");
            // lr exists exactly when the solver is sgd
            assert_eq!(a.contains_key("lr"), a["solver"] == "sgd", "{a:?}");
            let (l, lever) = space.local(&base, &mut rng, 0.25);
            // one parameter moves (plus the one its new choice brings in), unless an integer
            // at the edge of its range could not move
            let n = space.changed(&base, &l).len();
            assert!(n <= 2 && (n >= 1 || lever == "factors"), "{lever}: {l:?}");
        }
        let mut new = base.clone();
        new.insert("factors".into(), Value::from(32));
        new.insert("solver".into(), Value::from("sgd"));
        new.insert("lr".into(), Value::from(0.05));
        let deltas = space.deltas(ws.path(), &new).unwrap();
        let files: Vec<&str> = deltas.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(files, vec!["conf.toml", "params.json"]);
        for (file, _, text) in &deltas {
            std::fs::write(ws.path().join(file), text).unwrap();
        }
        let conf = std::fs::read_to_string(ws.path().join("conf.toml")).unwrap();
        assert_eq!(
            conf,
            "# model\n[model]\nsolver = \"sgd\" # which solver\nlr = 0.05\n"
        );
        let params = std::fs::read_to_string(ws.path().join("params.json")).unwrap();
        assert_eq!(params, "{\n  \"factors\": 32\n}\n");
        assert_eq!(space.read(ws.path()).unwrap(), new);
    }

    #[test]
    fn a_declared_key_missing_from_its_file_is_an_error() {
        let s = section();
        let space = DeclaredSpace::of(&s).unwrap();
        let ws = workspace();
        std::fs::write(ws.path().join("params.json"), "{\"other\": 1}").unwrap();
        let e = space.read(ws.path()).unwrap_err().to_string();
        assert!(e.contains("factors") && e.contains("params.json"), "{e}");
    }
}
