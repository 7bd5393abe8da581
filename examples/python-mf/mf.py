"""Implicit ALS matrix factorisation blended with popularity (numpy only)."""
import numpy as np


def fit(train, n_items, factors=8, reg=0.1, iterations=10, seed=42):
    n_users = len(train)
    r = np.zeros((n_users, n_items))
    for u, items in enumerate(train):
        r[u, items] = 1.0
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.1, size=(n_users, factors))
    y = rng.normal(scale=0.1, size=(n_items, factors))
    eye = reg * np.eye(factors)
    for _ in range(iterations):
        x = np.linalg.solve(y.T @ y + eye, y.T @ r.T).T
        y = np.linalg.solve(x.T @ x + eye, x.T @ r).T
    return x, y, r


def scores(x, y, r, popularity_blend=0.0):
    s = x @ y.T
    s = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)
    pop = r.sum(axis=0)
    pop = (pop - pop.mean()) / (pop.std() + 1e-9)
    return (1.0 - popularity_blend) * s + popularity_blend * pop[None, :]
