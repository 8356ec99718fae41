"""Training objectives, each a function of a positive's score and its sampled negatives' scores.

- ``bce``: the paper's pointwise log loss; positives labelled 1, negatives 0.
- ``bpr``: pairwise Bayesian Personalised Ranking (Rendle et al. 2009); only the order of a
  positive over a negative matters, which is what ranking metrics measure.
- ``softmax``: sampled softmax over the positive and its negatives (Wu et al. 2022, "On the
  Effectiveness of Sampled Softmax Loss for Item Recommendation"). It pushes the positive above
  all its negatives at once, a listwise proxy for HR/NDCG, and is robust to popularity bias.

All take ``positive`` of shape (B,), ``negative`` of shape (B, K) and optional per-row weights
(B,), and return a scalar (weighted) mean.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _mean(per_row: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return per_row.mean() if weight is None else (per_row * weight).mean()


def log_loss(
    positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    scores = torch.cat([positive.unsqueeze(1), negative], dim=1)
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    per_row = F.binary_cross_entropy_with_logits(scores, labels, reduction="none").mean(dim=1)
    return _mean(per_row, weight)


def bpr_loss(
    positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    return _mean(-F.logsigmoid(positive.unsqueeze(1) - negative).mean(dim=1), weight)


def sampled_softmax_loss(
    positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    logits = torch.cat([positive.unsqueeze(1), negative], dim=1)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return _mean(F.cross_entropy(logits, target, reduction="none"), weight)


LOSSES: dict[str, Loss] = {"bce": log_loss, "bpr": bpr_loss, "softmax": sampled_softmax_loss}
