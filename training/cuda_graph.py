"""A whole optimiser step (forward, backward, Adam) replayed as one CUDA graph.

These models are small: a NeuMF step is some hundred and seventy small kernels, which a
data-centre GPU finishes faster than Python can launch them, so the GPU idles most of each step
(the H100's timings: docs/benchmarks.md). Captured once, the step is replayed with a single
launch and the GPU sets the pace.
This follows PyTorch's "whole network capture" recipe (torch.cuda.graphs docs): a few eager
warm-up steps on a side stream, gradients unset before capture, and a capturable optimiser.

Only full batches replay; a batch of another shape (an epoch's last, smaller one) runs eagerly.
The warm-up and eager steps are ordinary training steps, so nothing is trained twice or skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

BatchLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

# Eager steps before capture: the first creates Adam's state, later ones settle the allocator.
WARMUP_STEPS = 3


class GraphedStep:
    def __init__(
        self, batch_loss: BatchLoss, optimizer: torch.optim.Optimizer, batch_rows: int
    ) -> None:
        self.batch_loss = batch_loss
        self.optimizer = optimizer
        self.batch_rows = batch_rows  # a full batch: the only shape that is captured
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self.loss: torch.Tensor | None = None
        self.eager_steps = 0
        self.side_stream = torch.cuda.Stream()

    def __call__(
        self, users: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        """One optimiser step on this batch; its detached loss is valid until the next call."""
        full = len(users) == self.batch_rows
        if full and self.graph is not None:
            for buffer, value in zip(self.inputs, (users, candidates, weights), strict=True):
                if buffer is not None:
                    buffer.copy_(value)
            self.graph.replay()
            return self.loss
        if full and self.eager_steps >= WARMUP_STEPS:
            return self._capture(users, candidates, weights)
        self.eager_steps += 1
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            loss = self._eager(users, candidates, weights)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return loss

    def _eager(
        self, users: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        # After capture the gradients are the graph's buffers: an eager backward must not add
        # to them, so it starts from unset gradients.
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.batch_loss(users, candidates, weights)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def _capture(
        self, users: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        self.inputs = (
            users.clone(),
            candidates.clone(),
            None if weights is None else weights.clone(),
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            loss = self.batch_loss(*self.inputs)
            loss.backward()
            self.optimizer.step()
            self.loss = loss.detach()
        self.graph.replay()  # capture records the step without running it
        return self.loss
