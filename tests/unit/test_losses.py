"""Each loss against its formula, and that lowering it ranks positives higher."""

import math

import pytest
import torch

from training.losses import LOSSES, bpr_loss, log_loss, sampled_softmax_loss


def test_log_loss_formula():
    positive, negative = torch.tensor([0.0]), torch.tensor([[0.0, 0.0]])
    assert log_loss(positive, negative).item() == pytest.approx(math.log(2))


def test_bpr_formula():
    positive, negative = torch.tensor([2.0]), torch.tensor([[1.0]])
    assert bpr_loss(positive, negative).item() == pytest.approx(-math.log(1 / (1 + math.e**-1)))


def test_sampled_softmax_formula():
    positive, negative = torch.tensor([1.0]), torch.tensor([[0.0, 0.0]])
    expected = -math.log(math.e / (math.e + 2))
    assert sampled_softmax_loss(positive, negative).item() == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_falls_as_the_positive_rises_above_negatives(name):
    negative = torch.zeros(3, 4)
    low = LOSSES[name](torch.full((3,), -1.0), negative)
    high = LOSSES[name](torch.full((3,), 3.0), negative)
    assert high < low


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weights_scale_each_rows_share(name):
    positive, negative = torch.tensor([3.0, -1.0]), torch.zeros(2, 4)
    per_row = torch.stack([LOSSES[name](positive[i : i + 1], negative[i : i + 1]) for i in (0, 1)])
    weight = torch.tensor([0.5, 1.5])
    assert LOSSES[name](positive, negative, weight) == pytest.approx((per_row * weight).mean())
    assert LOSSES[name](positive, negative) == pytest.approx(per_row.mean())
