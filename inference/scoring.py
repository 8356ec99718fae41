"""Whole-catalogue scores for a batch of users, with the item side of the model computed once.

A request only changes the user. So at load :class:`CatalogueScorer` keeps what depends on the
items alone, and per request only the user's side and the rest of the MLP tower run:

- GMF: ``w · (p_u ⊙ q_i) = (p_u ⊙ w) · q_i``, one matrix product with the item table;
- MLP: the first layer ``W [p_u; q_i] + b = (W_u p_u + b) + W_i q_i``, with ``W_i q_i`` kept for
  every item; the ReLU and the later layers run on user + item rows;
- NeuMF: both halves, and its output layer split the same way.

The scores equal the model's own forward pass to float rounding (tests/unit/test_scoring.py).
With ``dtype=torch.bfloat16`` the tower (the item half, the later layers and the output) runs in
bf16: on a CPU with bf16 units about twice as fast, and about three significant digits, so the
recommender takes a shortlist from these scores and ranks it with the model's fp32 scores.
The tower runs on blocks of at most ``rows_per_pass`` (user, item) rows: on a CPU a block that
fits the caches is faster per user than one big pass (docs/benchmarks.md, "Serving"), on a GPU
one pass for the whole batch is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.models import GMF, MLP, NeuMF

CPU_ROWS_PER_PASS = 4096  # 2 MB of a 128-wide fp32 activation: the L2 cache of these CPUs
GPU_ROWS_PER_PASS = 1 << 22


class CatalogueScorer:
    """Scores users against every item: ``scores(users)`` is ``model(users, all items)``."""

    def __init__(
        self, model: nn.Module, rows_per_pass: int | None = None, dtype: torch.dtype = torch.float32
    ) -> None:
        gmf, mlp, output = _parts(model)
        self.exact = dtype == torch.float32 or mlp is None or not mlp.tower
        weight, self._bias = output.weight.detach()[0], output.bias.detach()
        self.device = weight.device
        self.n_items = (gmf or mlp).item_embedding.num_embeddings
        self._rows = rows_per_pass or (
            GPU_ROWS_PER_PASS if self.device.type == "cuda" else CPU_ROWS_PER_PASS
        )
        self._gmf = self._mlp = None
        with torch.inference_mode():
            if gmf is not None:
                factors = gmf.user_embedding.embedding_dim
                # (p_u ⊙ w) · q_i: the output weights folded into the user side.
                self._gmf = (
                    gmf.user_embedding.weight * weight[:factors],
                    gmf.item_embedding.weight,
                )
                weight = weight[factors:]
            if mlp is not None:
                self._mlp = _MLPSide(mlp, weight, torch.float32 if self.exact else dtype)

    @torch.inference_mode()
    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) dense user indices on ``device`` -> (B, n_items) float32 logits."""
        scores = torch.full((len(users), self.n_items), float(self._bias), device=self.device)
        if self._gmf is not None:
            user_side, items = self._gmf
            scores.addmm_(user_side[users], items.T)
        if self._mlp is not None:
            self._mlp.add_to(scores, users, self._rows)
        return scores


class _MLPSide:
    """The MLP tower with its first layer's item half precomputed for the whole catalogue."""

    def __init__(self, mlp: MLP, output_weight: torch.Tensor, dtype: torch.dtype) -> None:
        half = mlp.user_embedding.embedding_dim
        self._dtype = dtype
        self._user_embedding = mlp.user_embedding.weight
        if mlp.tower:
            first, *rest = mlp.tower
            self._user_weight, self._user_bias = first.weight[:, :half], first.bias
            self._items = F.linear(mlp.item_embedding.weight, first.weight[:, half:])
        else:  # a one-entry --layers: the joined embeddings feed the output layer directly
            self._user_weight = self._user_bias = None
            self._items, rest = mlp.item_embedding.weight, []
        if mlp.tower:  # the parts that run on (user, item) rows, in the tower's dtype
            self._items = self._items.to(dtype)
            output_weight = output_weight.to(dtype)
        self._rest = [(layer.weight.to(dtype), layer.bias.to(dtype)) for layer in rest]
        self._output = output_weight

    def add_to(self, scores: torch.Tensor, users: torch.Tensor, rows: int) -> None:
        user_rows = self._user_embedding[users]
        if self._user_weight is None:
            half = user_rows.shape[1]
            scores += (user_rows @ self._output[:half]).unsqueeze(1)
            scores += self._items @ self._output[half:]
            return
        user_parts = F.linear(user_rows, self._user_weight, self._user_bias).to(self._dtype)
        n_items = scores.shape[1]
        users_per_pass, items_per_pass = max(1, rows // n_items), min(n_items, rows)
        for first in range(0, len(users), users_per_pass):
            user_part = user_parts[first : first + users_per_pass].unsqueeze(1)
            for lo in range(0, n_items, items_per_pass):
                hidden = F.relu_(self._items[lo : lo + items_per_pass] + user_part)
                for weight, bias in self._rest:
                    hidden = F.relu_(F.linear(hidden, weight, bias))
                scores[first : first + users_per_pass, lo : lo + items_per_pass] += (
                    hidden @ self._output
                ).float()


def _parts(model: nn.Module) -> tuple[GMF | None, MLP | None, nn.Linear]:
    """The GMF and MLP halves a model has, and the output layer over their joined features."""
    if isinstance(model, NeuMF):
        return model.gmf, model.mlp, model.predict
    if isinstance(model, GMF):
        return model, None, model.predict
    if isinstance(model, MLP):
        return None, model, model.predict
    raise TypeError(f"no catalogue scorer for {type(model).__name__}: GMF, MLP or NeuMF")
