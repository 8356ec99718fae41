"""Bulk negative sampling never returns a training positive and stays uniform otherwise."""

import pytest
import torch

from training.sampling import DENSE_TABLE_LIMIT, NegativeSampler

LOOKUPS = {"dense table": DENSE_TABLE_LIMIT, "sorted keys": 0}


@pytest.fixture(params=LOOKUPS)
def sampler_for(request):
    """Both lookups: small datasets get the table of flags, large ones the sorted keys."""
    return lambda users, items, n_items: NegativeSampler(
        users, items, n_items, dense_table_limit=LOOKUPS[request.param]
    )


@pytest.mark.parametrize(("limit", "dense"), [(100, True), (99, False)])
def test_the_table_is_used_only_up_to_its_size_limit(limit, dense):
    sampler = NegativeSampler(
        torch.tensor([0, 1]), torch.tensor([0, 1]), 50, dense_table_limit=limit
    )
    assert (sampler.positive_flags is not None) == dense
    assert (sampler.positive_keys is not None) == (not dense)


def test_negatives_exclude_positives_even_when_most_items_are_positive(sampler_for):
    n_items = 20
    users = torch.tensor([0] * 17 + [1] * 2)
    items = torch.cat([torch.arange(17), torch.tensor([5, 6])])
    sampler = sampler_for(users, items, n_items)
    draws = sampler.sample(torch.tensor([0] * 500 + [1] * 500), 4, torch.Generator().manual_seed(0))
    assert draws.shape == (1000, 4)
    assert set(draws[:500].flatten().tolist()) == {17, 18, 19}
    assert not ({5, 6} & set(draws[500:].flatten().tolist()))
    assert not sampler.is_positive(torch.tensor([0] * 500 + [1] * 500), draws).any()


def test_is_positive_matches_a_python_set_including_users_without_positives(sampler_for):
    generator = torch.Generator().manual_seed(1)
    # (29, 39), the table's last cell, is a positive: a lookup past the table must not read it.
    users = torch.cat([torch.randint(0, 30, (400,), generator=generator), torch.tensor([29])])
    items = torch.cat([torch.randint(0, 40, (400,), generator=generator), torch.tensor([39])])
    sampler = sampler_for(users, items, 40)
    positives = set(zip(users.tolist(), items.tolist(), strict=True))
    queried_users = torch.arange(35)  # users 30-34 have no training positives
    queried_items = torch.arange(40).expand(35, 40)
    expected = [[(u, i) in positives for i in range(40)] for u in range(35)]
    assert sampler.is_positive(queried_users, queried_items).tolist() == expected


def test_same_generator_seed_same_negatives(sampler_for):
    sampler = sampler_for(torch.tensor([0, 1]), torch.tensor([0, 1]), 50)
    users = torch.tensor([0, 1] * 100)
    first = sampler.sample(users, 3, torch.Generator().manual_seed(3))
    second = sampler.sample(users, 3, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


def test_both_lookups_draw_the_same_negatives():
    generator = torch.Generator().manual_seed(2)
    users = torch.randint(0, 50, (2000,), generator=generator)
    items = torch.randint(0, 60, (2000,), generator=generator)
    dense = NegativeSampler(users, items, 60)
    keyed = NegativeSampler(users, items, 60, dense_table_limit=0)
    assert dense.positive_flags is not None and keyed.positive_keys is not None
    first = dense.sample(users, 4, torch.Generator().manual_seed(5))
    second = keyed.sample(users, 4, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
