"""Negative sampling for a whole epoch in a handful of tensor operations.

Per-sample Python loops (the reference implementations' ``DataLoader`` with a ``set`` lookup per
draw) cost minutes an epoch; here every negative is drawn at once and checked against the sorted
keys ``user * n_items + item`` of the training positives with one ``searchsorted``. Only the
draws that hit a positive are redrawn, so a few rounds finish the epoch.
"""

from __future__ import annotations

import torch


class NegativeSampler:
    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_items: int) -> None:
        self.n_items = n_items
        self.positive_keys = torch.sort(users.long() * n_items + items.long()).values

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users.long().unsqueeze(-1) * self.n_items + items.long()
        index = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[index] == keys

    def sample(self, users: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """``k`` items per user that are not among that user's training positives."""
        device = self.positive_keys.device
        negatives = torch.randint(self.n_items, (len(users), k), generator=generator, device=device)
        rows = torch.arange(len(users), device=device)
        while rows.numel():
            block = negatives[rows]
            clash = self.is_positive(users[rows], block)
            if not bool(clash.any()):
                break
            block[clash] = torch.randint(
                self.n_items, (int(clash.sum()),), generator=generator, device=device
            )
            negatives[rows] = block
            rows = rows[clash.any(dim=1)]
        return negatives
