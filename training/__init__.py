"""GMF, MLP and NeuMF models, their losses, metrics and the fast training loop."""

import torch

# Denormal floats (below 1.2e-38) cost x86 cores microcode assists, many times slower than normal
# arithmetic. Weight decay shrinks the weights of ReLU units that never fire, and their Adam
# moments, into that range, and an MLP's epochs grow many times longer (docs/benchmarks.md). The
# flush-to-zero flag is per thread, and PyTorch's worker threads take it from this thread when
# they start, so it is set on import, before any parallel op. No score or ranking can tell such
# values from zero.
torch.set_flush_denormal(True)
