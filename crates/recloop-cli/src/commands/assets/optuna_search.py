"""Optuna TPE over the built-in brain's search ranges, for `recloop rec search-bench`.

Reads the ranges recloop wrote (space.json), and for each seed runs an Optuna study whose every
trial writes pipeline.toml into the workspace and scores it with the same evaluator as the
built-in brain (`recloop rec eval --split validation --json`). Prints one JSON object:
{"per_seed": [[best after checkpoint 1, ...], ...], "elapsed_s": ...}.
"""
import argparse
import json
import math
import subprocess
import sys
import time

import optuna


def suggest_range(trial, name, r):
    if r["integer"]:
        return float(trial.suggest_int(name, int(r["lo"]), int(r["hi"]), log=r["log"]))
    return trial.suggest_float(name, r["lo"], r["hi"], log=r["log"])


def model_toml(name, kind, weight, params):
    lines = ["[[models]]", f'name = "{name}"', f'kind = "{kind}"', f"weight = {weight!r}"]
    if params:
        lines.append("[models.params]")
        lines += [f"{k} = {float(v)!r}" for k, v in sorted(params.items())]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recloop", required=True)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--space", required=True)
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--checkpoints", required=True)
    ap.add_argument("--metric", required=True)
    args = ap.parse_args()
    space = json.load(open(args.space))
    kinds = sorted(space["params"].keys())
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()

    def objective(trial):
        kind = trial.suggest_categorical("kind", kinds)
        params = {p: suggest_range(trial, f"{kind}.{p}", r) for p, r in space["params"][kind].items()}
        text = model_toml(kind, kind, 1.0, params)
        second = trial.suggest_categorical("blend", ["none"] + kinds)
        if second != "none" and second != kind:
            w = suggest_range(trial, "blend.weight", space["weight"])
            p2 = {p: suggest_range(trial, f"blend.{second}.{p}", r)
                  for p, r in space["params"][second].items()}
            text += model_toml(second, second, w, p2)
        normalize = trial.suggest_categorical("normalize", space["normalize"])
        mmr = suggest_range(trial, "mmr_lambda", space["mmr_lambda"])
        pop = suggest_range(trial, "popularity_penalty", space["popularity_penalty"])
        cap = trial.suggest_categorical("genre_cap", space["genre_caps"])
        text += (f'\n[blend]\nnormalize = "{normalize}"\n\n[rerank]\ncandidates = 100\n'
                 f"mmr_lambda = {mmr!r}\npopularity_penalty = {pop!r}\ngenre_cap = {cap}\n")
        with open(f"{args.workspace}/pipeline.toml", "w") as f:
            f.write(text)
        out = subprocess.run(
            [args.recloop, "rec", "eval", "--workspace", args.workspace, "--split", "validation", "--json"],
            capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return float("nan")
        value = json.loads(out.stdout).get(args.metric, float("nan"))
        return value if math.isfinite(value) else float("nan")

    per_seed = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=args.trials)
        best, at = -math.inf, []
        for i, t in enumerate(study.trials, start=1):
            if t.value is not None and math.isfinite(t.value):
                best = max(best, t.value)
            if i in checkpoints:
                at.append(best)
        per_seed.append(at)
    print(json.dumps({"per_seed": per_seed, "elapsed_s": time.time() - started}))


if __name__ == "__main__":
    main()
