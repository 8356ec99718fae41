"""Most-popular and random baselines under the models' protocol: most-popular against a
brute-force ranking, random against its closed form and against random orders, and most-popular
on real MovieLens-100K against the figures known for it."""

import math

import numpy as np
import pytest

from preprocessing.job import resolve_source, run_preprocessing
from preprocessing.manifest import read_split
from training.baselines import baseline_metrics

K = 10
SPLITS = ("val", "test")


@pytest.fixture(scope="module")
def split(processed_dir):
    return read_split(processed_dir)


@pytest.fixture(scope="module")
def baselines(processed_dir):
    return baseline_metrics(processed_dir, K)


def holdouts(split):
    return {"val": split.validation, "test": split.test}


def sorted_ranks(scores, ties_last):
    """Each row's held-out item (column 0) found by sorting its candidates best first, placed
    after (``ties_last``) or before the candidates it ties with."""
    ranks = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda j: (-row[j], (j == 0) == ties_last))
        ranks.append(order.index(0))
    return np.array(ranks)


def hit_rate_and_ndcg(ranks):
    hits = ranks < K
    return hits.mean(), np.where(hits, 1 / np.log2(ranks + 2), 0.0).mean()


@pytest.mark.parametrize("name", SPLITS)
def test_most_popular_ranks_as_brute_force_with_ties_against_it(split, baselines, name):
    holdout = holdouts(split)[name]
    counts = np.bincount(split.train["item"], minlength=split.n_items)
    candidates = np.column_stack([holdout.frame["item"].to_numpy(), holdout.negatives])
    scores = counts[candidates]
    pessimistic = sorted_ranks(scores, ties_last=True)
    # the fixture has held-out items tied with their negatives, so the tie rule shows
    assert (pessimistic != sorted_ranks(scores, ties_last=False)).any()
    hit_rate, ndcg = hit_rate_and_ndcg(pessimistic)
    assert baselines["most-popular"][f"{name}_hr@{K}"] == pytest.approx(hit_rate)
    assert baselines["most-popular"][f"{name}_ndcg@{K}"] == pytest.approx(ndcg)


@pytest.mark.parametrize("name", SPLITS)
def test_random_is_its_closed_form_and_the_mean_of_random_orders(split, baselines, name):
    n_candidates = 1 + holdouts(split)[name].negatives.shape[1]
    hit_rate = K / n_candidates
    ndcg = sum(1 / math.log2(rank + 2) for rank in range(K)) / n_candidates
    assert baselines["random"][f"{name}_hr@{K}"] == pytest.approx(hit_rate)
    assert baselines["random"][f"{name}_ndcg@{K}"] == pytest.approx(ndcg)

    rng = np.random.default_rng(0)
    orders = rng.permuted(np.tile(np.arange(n_candidates), (100_000, 1)), axis=1)
    sampled_hit_rate, sampled_ndcg = hit_rate_and_ndcg(np.argmax(orders == 0, axis=1))
    # 100,000 orders: a standard error under 0.001 on either figure
    assert baselines["random"][f"{name}_hr@{K}"] == pytest.approx(sampled_hit_rate, abs=0.005)
    assert baselines["random"][f"{name}_ndcg@{K}"] == pytest.approx(sampled_ndcg, abs=0.005)


def test_most_popular_on_movielens_100k(ml100k_dir, tmp_path):
    source = resolve_source("ml-100k", data_dir=ml100k_dir, cache_dir=tmp_path, progress=False)
    run_preprocessing(source, tmp_path / "processed")
    most_popular = baseline_metrics(tmp_path / "processed")["most-popular"]
    assert 0.25 < most_popular["test_hr@10"] < 0.40
    # the validation item is the second-latest, nearer in time to the counted interactions
    assert most_popular["val_hr@10"] > most_popular["test_hr@10"]
