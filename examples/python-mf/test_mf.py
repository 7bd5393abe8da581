"""Unit tests of the model code (protected: the agents change mf.py, not its tests)."""
import json
import unittest

import numpy as np

import data
import mf


class ModelTest(unittest.TestCase):
    def setUp(self):
        interactions, self.n_items = data.generate(users=50, items=40, per_user=10)
        self.train, _, _ = data.split(interactions)
        with open("params.json") as f:
            self.params = json.load(f)

    def fit(self):
        return mf.fit(self.train, self.n_items, int(self.params["factors"]),
                      float(self.params["reg"]), int(self.params["iterations"]))

    def test_scores_have_one_row_per_user_and_one_column_per_item(self):
        x, y, r = self.fit()
        s = mf.scores(x, y, r, float(self.params.get("popularity_blend", 0.0)))
        self.assertEqual(s.shape, (len(self.train), self.n_items))
        self.assertTrue(np.all(np.isfinite(s)))

    def test_fitting_is_deterministic(self):
        a = mf.scores(*self.fit())
        b = mf.scores(*self.fit())
        self.assertTrue(np.array_equal(a, b))

    def test_popular_items_rank_higher_with_a_full_popularity_blend(self):
        x, y, r = self.fit()
        s = mf.scores(x, y, r, 1.0)
        pop = r.sum(axis=0)
        self.assertEqual(int(np.argmax(s[0])), int(np.argmax(pop)))


if __name__ == "__main__":
    unittest.main()
