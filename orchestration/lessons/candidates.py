"""Lesson 06's candidates: the course's four models, several seeds each, on one processed split.

Seed 0 of GMF, MLP and pre-trained NeuMF is lesson 05's registered version when one was trained
on this split (the data tag) and its ``model.tar.gz`` is still in the store; every other model is
trained here with its recipe as a local-mode job, and a missing seed-0 model is registered, so
the decision of lesson 06 always has the three registered models to choose from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from sagemaker.s3 import S3Downloader

from orchestration.lessons import registry
from orchestration.lessons.job_outputs import fetch_model, read_metrics
from orchestration.lessons.mlflow_runs import find_runs
from orchestration.lessons.training_jobs import TrainingJob, TrainingJobs

if TYPE_CHECKING:
    from sagemaker.local import LocalSession

# Family -> (the recipe's model, whether it starts from that seed's GMF and MLP).
FAMILIES = {
    "gmf": ("gmf", False),
    "mlp": ("mlp", False),
    "neumf": ("neumf", False),
    "neumf-pre": ("neumf", True),
}
# The registry's models, by family: lesson 05 registered NeuMF pre-trained as ncf-neumf.
REGISTERED_FAMILIES = {"gmf": "gmf", "mlp": "mlp", "neumf-pre": "neumf"}
REUSED_SEED = 0


@dataclass(frozen=True)
class Candidate:
    name: str  # family/seed<n>, the evaluation stage's group/member
    job: TrainingJob
    source: str  # where it came from, for people
    version: ModelVersion | None  # its registered version, for seed 0 of a registered family


def registered_on(client: MlflowClient, data_sha256: str) -> dict[str, ModelVersion]:
    """The newest version of each course model trained on this split, by registry model."""
    found = {}
    for model, name in registry.REGISTERED_MODELS.items():
        versions = [
            version
            for version in client.search_model_versions(f"name = '{name}'")
            if version.tags.get("data_manifest_sha256") == data_sha256
        ]
        if versions:
            found[model] = max(versions, key=lambda version: int(version.version))
    return found


def in_store(session: LocalSession, uri: str | None) -> bool:
    return bool(uri) and bool(S3Downloader.list(uri, sagemaker_session=session))


@dataclass
class CandidateBuilder:
    jobs: TrainingJobs
    client: MlflowClient
    experiment: str  # the MLflow experiment the jobs log to
    data_sha256: str
    hyperparameters: dict[str, Any]  # added to every job's recipe, e.g. {"epochs": 2}

    def reuse(self, name: str, version: ModelVersion) -> Candidate:
        """A registered version as a candidate: its model.tar.gz fetched from the store."""
        uri = version.tags["sagemaker_model_data"]
        folder = fetch_model(self.jobs.session, uri, self.jobs.work_dir / "models" / name)
        job = TrainingJob(name, uri, folder, read_metrics(folder), 0.0, None)
        source = f"registry: {version.name} v{version.version}"
        return Candidate(name.replace("-seed", "/seed"), job, source, version)

    def train(self, family: str, seed: int, made: dict[str, TrainingJob]) -> Candidate:
        """One recipe job; pre-trained NeuMF starts from ``made``'s GMF and MLP of its seed."""
        model, starts_pretrained = FAMILIES[family]
        job_name = f"{family}-seed{seed}"
        job = self.jobs.run(
            job_name,
            {"model": model, "seed": seed} | self.hyperparameters,
            pretrained={half: made[half] for half in ("gmf", "mlp")} if starts_pretrained else None,
        )
        version = None
        if seed == REUSED_SEED and family in REGISTERED_FAMILIES:
            run = find_runs(self.client, self.experiment, [job_name])[job_name]
            registered = REGISTERED_FAMILIES[family]
            version = registry.register(self.client, registered, run, job, self.data_sha256)
        return Candidate(f"{family}/seed{seed}", job, f"trained here, {job.seconds:.0f} s", version)

    def build(self, seeds: list[int]) -> dict[str, Candidate]:
        """Every family at every seed, reusing the registry's seed-0 models where it can."""
        registered = registered_on(self.client, self.data_sha256)
        candidates: dict[str, Candidate] = {}
        for seed in seeds:
            made: dict[str, TrainingJob] = {}
            for family in FAMILIES:
                version = registered.get(REGISTERED_FAMILIES.get(family, ""))
                if (
                    seed == REUSED_SEED
                    and version is not None
                    and in_store(self.jobs.session, version.tags.get("sagemaker_model_data"))
                ):
                    candidate = self.reuse(f"{family}-seed{seed}", version)
                else:
                    candidate = self.train(family, seed, made)
                made[family] = candidate.job
                candidates[candidate.name] = candidate
        return candidates
