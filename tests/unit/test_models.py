"""Model shapes, gradients, the factored first MLP layer, NeuMF pre-training, and loading."""

import json

import pytest
import torch
import torch.nn.functional as F

from training.artifacts import ArtifactError, load_model, save_model
from training.models import (
    GMF,
    MLP,
    NeuMF,
    architecture,
    build_model,
    count_parameters,
    gather_rows,
)

N_USERS, N_ITEMS = 11, 17


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_scores_one_item_or_many_candidates(name):
    model = build_model(name, N_USERS, N_ITEMS, 8, (64, 32, 16, 8))
    users = torch.tensor([0, 3, 10])
    assert model(users, torch.tensor([1, 2, 16])).shape == (3,)
    candidates = torch.randint(0, N_ITEMS, (3, 5))
    scores = model(users, candidates)
    assert scores.shape == (3, 5)
    # scoring a (B, C) block equals scoring each column on its own
    for column in range(5):
        torch.testing.assert_close(scores[:, column], model(users, candidates[:, column]))


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_every_parameter_gets_a_gradient(name):
    model = build_model(name, N_USERS, N_ITEMS, 4, (16, 8))
    model(torch.arange(N_USERS), torch.arange(N_USERS)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("candidates", [1, 3, 2 * N_ITEMS])  # the last gathers per-item sums
def test_factored_first_layer_equals_the_concatenation_forward_and_backward(candidates):
    torch.manual_seed(0)
    mlp = MLP(N_USERS, N_ITEMS, (16, 8, 4))
    users = torch.tensor([1, 2])
    items = torch.randint(0, N_ITEMS, (2, candidates))

    def naive():
        user = mlp.user_embedding(users).unsqueeze(1).expand(-1, candidates, -1)
        joined = torch.cat([user, mlp.item_embedding(items)], dim=-1)
        hidden = torch.relu(mlp.tower[0](joined))
        return mlp.predict(torch.relu(mlp.tower[1](hidden))).squeeze(-1)

    expected = naive()
    expected.square().sum().backward()
    expected_grads = {n: p.grad.clone() for n, p in mlp.named_parameters()}
    mlp.zero_grad()
    scores = mlp(users, items)
    torch.testing.assert_close(scores, expected)
    scores.square().sum().backward()  # the in-place ReLUs and row gathers keep autograd exact
    for name, parameter in mlp.named_parameters():
        torch.testing.assert_close(parameter.grad, expected_grads[name], msg=name)


@pytest.mark.parametrize("shape", [(6,), (3, 4)])
def test_gather_rows_is_an_embedding_lookup_forward_and_backward(shape):
    table = torch.randn(5, 3, requires_grad=True)
    index = torch.randint(0, 5, shape, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(*shape, 3)
    expected = F.embedding(index, table)
    (expected * weights).sum().backward()
    expected_grad, table.grad = table.grad, None
    rows = gather_rows(table, index)
    torch.testing.assert_close(rows, expected)
    (rows * weights).sum().backward()  # repeated indices add up their gradients
    torch.testing.assert_close(table.grad, expected_grad)


def test_parameter_counts_match_the_paper_layout():
    gmf = GMF(100, 50, 8)
    assert count_parameters(gmf) == 100 * 8 + 50 * 8 + 8 + 1
    mlp = MLP(100, 50, (64, 32, 16, 8))
    embeddings = (100 + 50) * 32
    tower = 64 * 32 + 32 + 32 * 16 + 16 + 16 * 8 + 8
    assert count_parameters(mlp) == embeddings + tower + 8 + 1


def test_neumf_pretrained_with_alpha_one_is_the_gmf():
    gmf, mlp = GMF(N_USERS, N_ITEMS, 8), MLP(N_USERS, N_ITEMS, (16, 8))
    neumf = NeuMF(N_USERS, N_ITEMS, 8, (16, 8))
    neumf.load_pretrained(gmf, mlp, alpha=1.0)
    users, items = torch.arange(5), torch.arange(5)
    torch.testing.assert_close(neumf(users, items), gmf(users, items))
    neumf.load_pretrained(gmf, mlp, alpha=0.5)
    torch.testing.assert_close(
        neumf(users, items), 0.5 * gmf(users, items) + 0.5 * mlp(users, items)
    )


def _empty_weights(folder):
    (folder / "model.pt").write_bytes(b"")


def _garbage_weights(folder):
    (folder / "model.pt").write_bytes(b"not a model")


def _a_tensor_for_weights(folder):
    torch.save(torch.zeros(3), folder / "model.pt")


def _negative_users(folder):
    config = json.loads((folder / "config.json").read_text())
    config["architecture"]["n_users"] = -1
    (folder / "config.json").write_text(json.dumps(config))


def _weights_of_another_size(folder):
    torch.save(GMF(N_USERS + 1, N_ITEMS, 8).state_dict(), folder / "model.pt")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_empty_weights, r"model\.pt is unreadable \(EOFError\)"),
        (_garbage_weights, r"model\.pt is unreadable \(UnpicklingError\)"),
        (_a_tensor_for_weights, r"model\.pt holds a Tensor, not a state_dict"),
        (
            _negative_users,
            r"config\.json is not a model config: RuntimeError\(.*negative dimension",
        ),
        (
            _weights_of_another_size,
            r"model\.pt does not match config\.json: (?s:.*)size mismatch for user_embedding",
        ),
    ],
)
def test_a_broken_model_file_is_an_artifact_error(tmp_path, breakage, message):
    """Training (pre-trained channels), evaluation and serving all load through load_model."""
    arch = architecture("gmf", N_USERS, N_ITEMS, 8, (16, 8))
    save_model(tmp_path, GMF(N_USERS, N_ITEMS, 8), {"architecture": arch}, {})
    load_model(tmp_path)
    breakage(tmp_path)
    with pytest.raises(ArtifactError, match=message):
        load_model(tmp_path)
