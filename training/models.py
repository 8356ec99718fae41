"""GMF, MLP and NeuMF as in He et al. (WWW'17), with one change that keeps the maths identical.

Every model scores ``users`` of shape (B,) against ``items`` of shape (B,) or (B, C): training
scores a positive and its negatives in one call, evaluation scores 100 candidates per user.
The MLP's first layer acts on ``[user; item]``; it is applied as ``W_u·user + W_i·item`` (same
weights, same result, fewer FLOPs): the user half is computed once per row instead of once per
candidate, and when a batch holds more candidates than the catalogue has items, the item half is
computed once per item and gathered. That layer is most of the MLP's cost, so a training step on
ML-1M does about a third of the naive arithmetic, and scoring the whole catalogue is cheap.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _init_embedding(embedding: nn.Embedding) -> None:
    nn.init.normal_(embedding.weight, std=0.01)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` with the backward pass that is fastest where the table lives.

    On CPU ``index_select``, whose gradient is one ``index_add_``: faster than the sort-based
    gradient of ``F.embedding`` (measured: docs/benchmarks.md). On CUDA
    ``F.embedding``, whose gradient is deterministic where ``index_add_`` uses atomics.
    """
    if table.device.type != "cpu":
        return F.embedding(index, table)
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[-1])


class GMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, num_factors: int) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, num_factors)
        self.item_embedding = nn.Embedding(n_items, num_factors)
        self.predict = nn.Linear(num_factors, 1)
        _init_embedding(self.user_embedding)
        _init_embedding(self.item_embedding)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user = gather_rows(self.user_embedding.weight, users)
        item = gather_rows(self.item_embedding.weight, items)
        if items.dim() == 2:
            user = user.unsqueeze(1)
        return user * item

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.predict(self.features(users, items)).squeeze(-1)


class MLP(nn.Module):
    def __init__(self, n_users: int, n_items: int, layers: tuple[int, ...]) -> None:
        super().__init__()
        half = layers[0] // 2
        self.user_embedding = nn.Embedding(n_users, half)
        self.item_embedding = nn.Embedding(n_items, half)
        self.tower = nn.ModuleList(
            nn.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(layers)
        )
        self.predict = nn.Linear(layers[-1], 1)
        _init_embedding(self.user_embedding)
        _init_embedding(self.item_embedding)
        for linear in self.tower:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user = gather_rows(self.user_embedding.weight, users)
        if not self.tower:  # a one-entry --layers: the joined embeddings feed the output layer
            item = gather_rows(self.item_embedding.weight, items)
            if items.dim() == 2:
                user = user.unsqueeze(1).expand_as(item)
            return torch.cat([user, item], dim=-1)
        first, *rest = self.tower
        half = self.user_embedding.embedding_dim
        user_part = F.linear(user, first.weight[:, :half], first.bias)
        item_weight = first.weight[:, half:]
        if items.numel() > self.item_embedding.num_embeddings:
            item_part = gather_rows(F.linear(self.item_embedding.weight, item_weight), items)
        else:
            item_part = F.linear(gather_rows(self.item_embedding.weight, items), item_weight)
        if items.dim() == 2:
            user_part = user_part.unsqueeze(1)
        # Each activation is the size of the whole batch of candidates. The ReLUs run in place,
        # and only on tensors that are nobody's view: an in-place change of a view makes
        # autograd copy the whole gradient back into its base. The tower runs on rows.
        width = item_part.shape[-1]
        hidden = F.relu_(item_part + user_part).view(-1, width)
        for linear in rest:
            hidden = F.relu_(linear(hidden))
        return hidden.view(*items.shape, -1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.predict(self.features(users, items)).squeeze(-1)


class NeuMF(nn.Module):
    """GMF and MLP side by side with separate embeddings, fused by one output layer."""

    def __init__(
        self, n_users: int, n_items: int, num_factors: int, layers: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.gmf = GMF(n_users, n_items, num_factors)
        self.mlp = MLP(n_users, n_items, layers)
        del self.gmf.predict, self.mlp.predict
        self.predict = nn.Linear(num_factors + layers[-1], 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.gmf.features(users, items), self.mlp.features(users, items)], -1)
        return self.predict(fused).squeeze(-1)

    @torch.no_grad()
    def load_pretrained(self, gmf: GMF, mlp: MLP, alpha: float) -> None:
        """The paper's pre-training: copy both halves, weight the two output layers by alpha."""
        gmf_state = {k: v for k, v in gmf.state_dict().items() if not k.startswith("predict.")}
        mlp_state = {k: v for k, v in mlp.state_dict().items() if not k.startswith("predict.")}
        self.gmf.load_state_dict(gmf_state)
        self.mlp.load_state_dict(mlp_state)
        self.predict.weight.copy_(
            torch.cat([alpha * gmf.predict.weight, (1 - alpha) * mlp.predict.weight], dim=1)
        )
        self.predict.bias.copy_(alpha * gmf.predict.bias + (1 - alpha) * mlp.predict.bias)


def build_model(
    name: str, n_users: int, n_items: int, num_factors: int, layers: tuple[int, ...]
) -> nn.Module:
    if name == "gmf":
        return GMF(n_users, n_items, num_factors)
    if name == "mlp":
        return MLP(n_users, n_items, layers)
    if name == "neumf":
        return NeuMF(n_users, n_items, num_factors, layers)
    raise ValueError(f"unknown model {name!r}: choose gmf, mlp or neumf")


def architecture(name: str, n_users: int, n_items: int, num_factors: int, layers) -> dict[str, Any]:
    """What config.json records so a model can be rebuilt without the training code's defaults."""
    return {
        "model": name,
        "n_users": n_users,
        "n_items": n_items,
        "num_factors": num_factors,
        "layers": list(layers),
    }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
