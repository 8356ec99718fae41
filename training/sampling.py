"""Negative sampling for a whole epoch in a handful of tensor operations.

Per-sample Python loops (the reference implementations' ``DataLoader`` with a ``set`` lookup per
draw) cost minutes an epoch; here every negative is drawn at once and checked against the
training positives in one lookup. Only the draws that hit a positive are redrawn, so a few rounds
finish the epoch.

The lookup is a dense user x item table of flags when that table is small (ML-1M: 22 MB): one
gather a draw. Otherwise it is the sorted keys ``user * n_items + item`` and a ``searchsorted``,
about log2(interactions) steps a draw but memory only in proportion to the data. Both give the
same answers, so the negatives do not depend on which lookup a dataset gets.
"""

from __future__ import annotations

import torch

DENSE_TABLE_LIMIT = 2**27  # user x item flags of one byte: at most 128 MB


class NegativeSampler:
    def __init__(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        n_items: int,
        *,
        dense_table_limit: int = DENSE_TABLE_LIMIT,
    ) -> None:
        self.n_items = n_items
        keys = users.long() * n_items + items.long()
        table_size = (int(users.max()) + 1 if len(users) else 1) * n_items
        self.positive_flags: torch.Tensor | None = None
        self.positive_keys: torch.Tensor | None = None
        if table_size <= dense_table_limit:
            self.positive_flags = torch.zeros(table_size, dtype=torch.bool, device=keys.device)
            self.positive_flags[keys] = True
        else:
            self.positive_keys = torch.sort(keys).values

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users.long().unsqueeze(-1) * self.n_items + items.long()
        if self.positive_flags is not None:
            size = len(self.positive_flags)  # users beyond the table have no positives
            return self.positive_flags[keys.clamp(max=size - 1)] & (keys < size)
        index = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[index] == keys

    def sample(self, users: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """``k`` items per user that are not among that user's training positives."""
        device = users.device
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
