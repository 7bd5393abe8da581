"""Evaluate params.json: prints one JSON object of metrics (ndcg@10, recall@10, coverage@10).

When the environment variable RECLOOP_SIM_EXPORT names a file, also writes there what recloop's
simulator needs for an online A/B test: the training interactions (they ground the simulated
world) and this recommender's ranked list (top 200) for every user.
"""
import argparse
import json
import os
import time

import numpy as np

import data
import mf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["validation", "holdout"], default="validation")
    ap.add_argument("--dry-run", action="store_true",
                    help="the whole pipeline on a small sample (80 users, 60 items), in a second")
    args = ap.parse_args()
    params = json.load(open("params.json"))
    t0 = time.time()
    if args.dry_run:
        interactions, n_items = data.generate(users=80, items=60, per_user=12)
    else:
        interactions, n_items = data.generate()
    train, valid, hold = data.split(interactions)
    if args.split == "holdout":
        train = [np.concatenate([t, v]) for t, v in zip(train, valid)]
        target = hold
    else:
        target = valid
    x, y, r = mf.fit(train, n_items, int(params["factors"]), float(params["reg"]),
                     int(params["iterations"]))
    s = mf.scores(x, y, r, float(params.get("popularity_blend", 0.0)))
    s[r > 0] = -np.inf
    export = os.environ.get("RECLOOP_SIM_EXPORT")
    if export:
        lists = np.argsort(-s, axis=1, kind="stable")[:, :200]
        lists = [[int(i) for i in row if np.isfinite(s[u, i])] for u, row in enumerate(lists)]
        pairs = [[u, int(i), 1.0] for u, items in enumerate(train) for i in items]
        with open(export, "w") as f:
            json.dump({"n_users": len(train), "n_items": n_items,
                       "interactions": pairs, "lists": lists}, f)
    top = np.argsort(-s, axis=1)[:, :10]
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg, recall = [], []
    for u, items in enumerate(target):
        hits = np.isin(top[u], items).astype(float)
        ideal = discounts[: min(len(items), 10)].sum()
        ndcg.append((hits * discounts).sum() / ideal)
        recall.append(hits.sum() / len(items))
    out = {
        "ndcg@10": round(float(np.mean(ndcg)), 6),
        "recall@10": round(float(np.mean(recall)), 6),
        "coverage@10": round(len(np.unique(top)) / n_items, 6),
        "eval_s": round(time.time() - t0, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
