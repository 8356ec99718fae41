"""Hyperparameters as SageMaker carries them: every value a string, lists space-separated.

The host side turns a recipe into these strings (a job's ``hyperparameters.json``) or into the
entry point's flags (a plain process); the entry point reads both back (``training.__main__``).
"""

from __future__ import annotations

from typing import Any


def hyperparameter_value(value: Any) -> str:
    """One value as SageMaker passes it: lists and tuples become space-separated numbers."""
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)


def hyperparameter_strings(hyperparameters: dict[str, Any]) -> dict[str, str]:
    """What a training job's ``hyperparameters.json`` holds."""
    return {key: hyperparameter_value(value) for key, value in hyperparameters.items()}


def hyperparameter_flags(hyperparameters: dict[str, Any]) -> list[str]:
    """The same hyperparameters as the training entry point's command-line flags."""
    flags = []
    for key, value in hyperparameters.items():
        flags.append(f"--{key.replace('_', '-')}")
        flags.extend(str(n) for n in (value if isinstance(value, list | tuple) else (value,)))
    return flags
