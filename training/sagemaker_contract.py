"""Where a SageMaker training container finds its inputs, whichever way it was started.

One contract, three launchers:

- a bring-your-own-container image (ours: ``train`` runs ``python -m training``) gets no ``SM_*``
  variables, only files under ``/opt/ml``: ``input/config/hyperparameters.json`` (every value a
  string), ``input/config/resourceconfig.json`` (``current_host``, ``hosts``),
  ``input/config/inputdataconfig.json`` (one key per channel), each channel mounted at
  ``input/data/<channel>``, the model folder ``model/`` and ``output/`` (``output/failure``,
  ``output/data``), plus ``TRAINING_JOB_NAME`` and whatever the Estimator's ``environment=`` sets;
- the sagemaker-training toolkit (script mode) exports ``SM_CHANNEL_<NAME>``, ``SM_MODEL_DIR``,
  ``SM_OUTPUT_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_HOSTS`` and ``SM_CURRENT_HOST``;
- tests and host subprocesses set those ``SM_*`` variables, or point ``OPT_ML_ROOT`` at a folder
  laid out like ``/opt/ml``.

An ``SM_*`` variable wins over the file it stands for.

Checkpoints: real SageMaker syncs ``/opt/ml/checkpoints`` with ``checkpoint_s3_uri``; local mode
ignores ``checkpoint_s3_uri`` and mounts nothing there. What works in both is a ``checkpoints``
channel given as a ``file://`` folder, which local mode bind-mounts read-write at
``/opt/ml/input/data/checkpoints``. So the checkpoint folder is that channel when the job has it,
else ``/opt/ml/checkpoints`` when it exists (the cloud), else none (a ``--checkpoint-dir`` flag
wins over both).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT_ENV = "OPT_ML_ROOT"
DEFAULT_ROOT = Path("/opt/ml")
CHECKPOINT_CHANNEL = "checkpoints"


class ContractError(ValueError):
    """The container's inputs are missing or malformed; the message names what and where."""


@dataclass(frozen=True)
class Cluster:
    """The training instances; ranks follow the sorted host names, so every host agrees."""

    hosts: tuple[str, ...]
    current_host: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", tuple(sorted(self.hosts)))
        if self.current_host not in self.hosts:
            raise ContractError(f"the current host {self.current_host!r} is not in {self.hosts}")

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def world_size(self) -> int:
        return len(self.hosts)

    @property
    def master(self) -> str:
        return self.hosts[0]


SINGLE_HOST = Cluster(hosts=("localhost",), current_host="localhost")


@dataclass(frozen=True)
class TrainingContract:
    root: Path = DEFAULT_ROOT
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TrainingContract:
        env = dict(os.environ if env is None else env)
        return cls(Path(env.get(ROOT_ENV, DEFAULT_ROOT)), env)

    @property
    def config_dir(self) -> Path:
        return self._env_path("SM_INPUT_CONFIG_DIR") or self.root / "input" / "config"

    @property
    def job_name(self) -> str | None:
        return self.env.get("TRAINING_JOB_NAME")

    def channel(self, name: str) -> Path | None:
        """The channel's folder, or None when the job has no such channel."""
        from_env = self._env_path(f"SM_CHANNEL_{name.upper()}")
        if from_env:
            return from_env
        if name in self._config_file("inputdataconfig.json", {}):
            return self.root / "input" / "data" / name
        return None

    def require_channel(self, name: str) -> Path:
        path = self.channel(name)
        if path is None:
            raise ContractError(
                f"the job has no {name!r} channel: give the Estimator a {name!r} input "
                f"(estimator.fit({{{name!r}: ...}})) or set SM_CHANNEL_{name.upper()}"
            )
        return path

    def model_dir(self) -> Path | None:
        return self._env_path("SM_MODEL_DIR") or self._existing(self.root / "model")

    def output_dir(self) -> Path | None:
        return self._env_path("SM_OUTPUT_DIR") or self._existing(self.root / "output")

    def output_data_dir(self) -> Path | None:
        return self._env_path("SM_OUTPUT_DATA_DIR") or self._existing(self.root / "output" / "data")

    def checkpoint_dir(self) -> Path | None:
        return self.channel(CHECKPOINT_CHANNEL) or self._existing(self.root / "checkpoints")

    def cluster(self) -> Cluster:
        if "SM_HOSTS" in self.env:
            hosts = _json(self.env["SM_HOSTS"], "SM_HOSTS")
            if not isinstance(hosts, list) or not hosts:
                raise ContractError(f"SM_HOSTS must be a JSON list of host names, got {hosts!r}")
            current = self.env.get("SM_CURRENT_HOST")
            if current is None:
                raise ContractError("SM_HOSTS is set but SM_CURRENT_HOST is not")
            # the toolkit writes the host plainly; JSON-quoting it must work too
            current = _json(current, "SM_CURRENT_HOST") if current.startswith('"') else current
            return Cluster(tuple(hosts), current)
        resources = self._config_file("resourceconfig.json", None)
        if resources is None:
            return SINGLE_HOST
        try:
            return Cluster(tuple(resources["hosts"]), resources["current_host"])
        except (KeyError, TypeError) as exc:
            raise ContractError(
                f"{self.config_dir / 'resourceconfig.json'} lacks 'hosts' or 'current_host'"
            ) from exc

    def _env_path(self, name: str) -> Path | None:
        value = self.env.get(name)
        return Path(value) if value else None

    @staticmethod
    def _existing(path: Path) -> Path | None:
        return path if path.is_dir() else None

    def _config_file(self, name: str, missing: Any) -> Any:
        path = self.config_dir / name
        if not path.is_file():
            return missing
        return _json(path.read_text(), str(path))


def _json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{source} is not valid JSON: {exc}") from exc
