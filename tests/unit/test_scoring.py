"""The precomputed catalogue scorer against the models' own forward pass."""

from __future__ import annotations

import pytest
import torch

from inference.scoring import CatalogueScorer
from training.models import build_model

N_USERS, N_ITEMS = 40, 300


def _model(name: str, layers: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(3)
    model = build_model(name, N_USERS, N_ITEMS, 8, layers).eval()
    for parameter in model.parameters():  # trained-sized weights, not the tiny initial ones
        torch.nn.init.normal_(parameter, std=0.3)
    return model


@pytest.mark.parametrize(
    ("name", "layers"),
    [("gmf", (16,)), ("mlp", (32, 16, 8)), ("mlp", (16,)), ("neumf", (32, 16, 8))],
)
@pytest.mark.parametrize("rows_per_pass", [None, 4096, 100, 7, 1])
def test_scores_equal_the_models_forward_pass(name, layers, rows_per_pass):
    model = _model(name, layers)
    users = torch.tensor([0, 5, 39, 5])
    with torch.no_grad():
        expected = model(users, torch.arange(N_ITEMS).expand(len(users), N_ITEMS))
    scores = CatalogueScorer(model, rows_per_pass).scores(users)
    assert scores.shape == (len(users), N_ITEMS)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_the_trained_course_model_scores_the_same(model_dir):
    from training.artifacts import load_model

    model, _ = load_model(model_dir)
    users = torch.arange(10)
    with torch.no_grad():
        expected = model(users, torch.arange(model.item_embedding.num_embeddings).expand(10, -1))
    torch.testing.assert_close(CatalogueScorer(model).scores(users), expected)


def test_only_ncf_models_have_a_scorer():
    with pytest.raises(TypeError, match="no catalogue scorer for Linear"):
        CatalogueScorer(torch.nn.Linear(2, 1))


def test_a_bf16_tower_scores_to_bf16_precision():
    model = _model("neumf", (32, 16, 8))
    users = torch.arange(N_USERS)
    exact = CatalogueScorer(model).scores(users)
    approximate = CatalogueScorer(model, dtype=torch.bfloat16)
    assert (
        not approximate.exact and CatalogueScorer(_model("gmf", (16,)), dtype=torch.bfloat16).exact
    )
    scores = approximate.scores(users)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, exact, rtol=0.02, atol=0.02 * float(exact.abs().max()))
    assert not torch.equal(scores, exact)  # it did run in bf16
