"""Evaluation throughput (``evaluation.throughput``): how many users are scored at once changes
the speed of both passes, never their ranks. No assertion on time: only the table's shape."""

import pytest
import torch

from evaluation.throughput import COLUMNS, PASSES, measure
from training.evaluate import full_catalogue_pass, holdout_ranks
from training.models import build_model


@pytest.fixture(scope="module")
def model(data):
    torch.manual_seed(0)
    return build_model("neumf", data.n_users, data.n_items, 4, (16, 8)).eval()


def test_ranks_are_the_same_whatever_the_users_per_batch(model, data):
    seen = data.with_validation_merged()

    def both(batch):
        full, top = full_catalogue_pass(
            model, data.test, seen.users, seen.items, data.n_items, 10, users_per_batch=batch
        )
        return holdout_ranks(model, data.test, users_per_batch=batch), full, top

    default = both(None)  # today's chunks: every user at once on the sampled pass, 81 on full
    for batch in (1, 7):
        for chunked, reference in zip(both(batch), default, strict=True):
            assert torch.equal(chunked, reference)


def test_measure_gives_a_row_per_pass_and_batch(data):
    model = build_model("gmf", data.n_users, data.n_items, 4, (8,)).train()
    table = measure(model, data, [1, 64], repeats=1)
    assert list(table.columns) == COLUMNS
    assert set(zip(table["pass"], table["users_per_batch"], strict=True)) == {
        (name, batch) for name in PASSES for batch in (1, 64)
    }
    assert len(table) == 4
    assert (table["users_per_s"] > 0).all() and (table["seconds"] > 0).all()
    assert (table["device"] == "cpu").all()
    assert model.training  # timed in eval mode, then put back as it was


@pytest.mark.parametrize("bad", [0, -3])
def test_a_users_per_batch_below_one_is_refused_naming_it(model, data, bad):
    message = f"users_per_batch must be .*positive.*, got {bad}$"
    with pytest.raises(ValueError, match=message):
        holdout_ranks(model, data.test, users_per_batch=bad)
    with pytest.raises(ValueError, match=message):
        full_catalogue_pass(
            model, data.test, data.users, data.items, data.n_items, users_per_batch=bad
        )
    with pytest.raises(ValueError, match=message):
        measure(model, data, [64, bad])
