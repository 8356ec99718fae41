"""Bulk negative sampling never returns a training positive and stays uniform otherwise."""

import torch

from training.sampling import NegativeSampler


def test_negatives_exclude_positives_even_when_most_items_are_positive():
    n_items = 20
    users = torch.tensor([0] * 17 + [1] * 2)
    items = torch.cat([torch.arange(17), torch.tensor([5, 6])])
    sampler = NegativeSampler(users, items, n_items)
    draws = sampler.sample(torch.tensor([0] * 500 + [1] * 500), 4, torch.Generator().manual_seed(0))
    assert draws.shape == (1000, 4)
    assert set(draws[:500].flatten().tolist()) == {17, 18, 19}
    assert not ({5, 6} & set(draws[500:].flatten().tolist()))
    assert not sampler.is_positive(torch.tensor([0] * 500 + [1] * 500), draws).any()


def test_same_generator_seed_same_negatives():
    sampler = NegativeSampler(torch.tensor([0, 1]), torch.tensor([0, 1]), 50)
    users = torch.tensor([0, 1] * 100)
    first = sampler.sample(users, 3, torch.Generator().manual_seed(3))
    second = sampler.sample(users, 3, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
