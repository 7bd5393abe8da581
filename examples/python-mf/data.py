"""A seeded synthetic implicit-feedback dataset with latent structure (users x items)."""
import numpy as np


def generate(seed=42, users=400, items=250, dims=6, per_user=25):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(users, dims))
    v = rng.normal(size=(items, dims))
    pop = rng.zipf(1.6, size=items).astype(float)
    logits = u @ v.T + 0.8 * np.log(pop)[None, :]
    interactions = []
    for x in range(users):
        p = np.exp(logits[x] - logits[x].max())
        p /= p.sum()
        chosen = rng.choice(items, size=per_user, replace=False, p=p)
        interactions.append(chosen)
    return interactions, items


def split(interactions, seed=42):
    """Per user: last 2 items to holdout, previous 2 to validation, the rest to train."""
    train, valid, hold = [], [], []
    for items in interactions:
        train.append(items[:-4])
        valid.append(items[-4:-2])
        hold.append(items[-2:])
    return train, valid, hold
