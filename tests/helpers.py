"""Helpers that test files of more than one tier share (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from prometheus_client.parser import text_string_to_metric_families

from training.checkpoint import StopRequest

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """A script of scripts/ (not a package) imported as a module, for its tests."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# unit/ and integration/test_datasets.py: three ML-1M ratings lines
RATINGS = b"1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n"

# unit/ and integration/test_training.py: a few quick epochs of small models, on the CPU
CPU = torch.device("cpu")
FAST_FIT = {"epochs": 3, "batch_size": 256, "num_factors": 8, "layers": (16, 8), "patience": 3}

# unit/ and integration/test_training_cli.py: the same for ``python -m training``
FAST_FLAGS = ["--epochs", "2", "--num-factors", "8", "--layers", "16", "8", "--batch-size", "256"]


class StopAfter(StopRequest):
    """Acts like a SIGTERM arriving during the n-th optimiser step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.remaining = steps

    def __bool__(self) -> bool:
        self.remaining -= 1
        return self.remaining < 0


# integration/test_inference.py and test_model_server.py: a server's /metrics read back
def metric_total(metrics: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
