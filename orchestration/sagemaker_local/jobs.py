"""Processing and training jobs in the course's own images (bring-your-own-container)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

from orchestration.infra.containers import training_environment
from orchestration.names import IMAGES, ROLE
from orchestration.sagemaker_local.session import run_job
from training.hyperparameters import hyperparameter_strings

PROCESSING_INPUT = "/opt/ml/processing/input/raw"
PROCESSING_OUTPUT = "/opt/ml/processing/output/processed"
# Two cores shared by several containers: one thread each avoids oversubscription stalls.
CONTAINER_ENV = {"OMP_NUM_THREADS": "1"}


def run_processing(
    session: LocalSession,
    *,
    raw: str | None,
    output: str,
    arguments: list[str],
    instance_type: str = "local",
    job_name: str | None = None,
) -> str:
    """The preprocessing image as a processing job: ``raw`` in, Parquet + manifest to ``output``.

    ``raw`` is an ``s3://`` URI or a local folder (the SDK uploads it); None for synthetic data,
    which the job generates itself.
    """
    inputs = [] if raw is None else [ProcessingInput(raw, PROCESSING_INPUT, input_name="raw")]
    processor = preprocessing_processor(session, instance_type)
    run_job(
        "processing",
        lambda: processor.run(
            inputs=inputs,
            outputs=[
                ProcessingOutput(
                    source=PROCESSING_OUTPUT, destination=output, output_name="processed"
                )
            ],
            arguments=arguments,
            job_name=job_name,
            wait=True,
            logs=True,
        ),
    )
    return output


def preprocessing_processor(session: LocalSession, instance_type: str = "local") -> Processor:
    """The preprocessing image as a generic Processor: jobs and pipeline steps share it."""
    return _module_processor(session, "preprocessing", "preprocessing", instance_type)


def _module_processor(
    session: LocalSession, image: str, module: str, instance_type: str
) -> Processor:
    """One course image running ``python -m <module>`` as a processing job."""
    return Processor(
        role=ROLE,
        image_uri=IMAGES[image],
        instance_count=1,
        instance_type=instance_type,
        entrypoint=["python", "-m", module],
        env=CONTAINER_ENV,
        sagemaker_session=session,
    )


EVALUATION_DATA = "/opt/ml/processing/input/data"
EVALUATION_MODELS = "/opt/ml/processing/input/models"
EVALUATION_OUTPUT = "/opt/ml/processing/output/evaluation"


def evaluation_processor(session: LocalSession, instance_type: str = "local") -> Processor:
    """The evaluation image as a generic Processor running ``python -m evaluation``."""
    return _module_processor(session, "evaluation", "evaluation", instance_type)


def evaluation_inputs(processed: str, models: dict[str, str]) -> list[ProcessingInput]:
    """The split and each model's ``model.tar.gz`` (by ``s3://`` URI) as processing inputs. A
    name ``group/member`` becomes the input folder ``group--member``, which the entry point reads
    back as the same name."""
    inputs = [ProcessingInput(processed, EVALUATION_DATA, input_name="data")]
    for name, model_data in models.items():
        folder = name.replace("/", "--", 1)
        inputs.append(
            ProcessingInput(model_data, f"{EVALUATION_MODELS}/{folder}", input_name=folder)
        )
    return inputs


def run_evaluation(
    session: LocalSession,
    *,
    processed: str,
    models: dict[str, str],
    output: str,
    arguments: list[str] | None = None,
    instance_type: str = "local",
) -> str:
    """The evaluation stage as a processing job: ``evaluation.json``, ``per_user.parquet`` and
    ``plots/`` out to ``output``."""
    processor = evaluation_processor(session, instance_type)
    run_job(
        "evaluation",
        lambda: processor.run(
            inputs=evaluation_inputs(processed, models),
            outputs=[ProcessingOutput(EVALUATION_OUTPUT, output, output_name="evaluation")],
            arguments=arguments or [],
            wait=True,
            logs=True,
        ),
    )
    return output


def run_training(
    session: LocalSession,
    *,
    channels: dict[str, str],
    hyperparameters: dict[str, Any],
    output_path: str,
    instance_type: str = "local",
    instance_count: int = 1,
    checkpoint_dir: Path | None = None,
    environment: dict[str, str] | None = None,
    job_name: str | None = None,
) -> str:
    """The training image as a training job; returns the ``s3://`` URI of ``model.tar.gz``.

    Local mode does not sync ``checkpoint_s3_uri``; a ``checkpoints`` channel given as a
    ``file://`` folder is bind-mounted read-write instead, which gives the same resume
    behaviour: the training entry point writes its checkpoints there when the channel exists.
    """
    estimator = training_estimator(
        session,
        hyperparameters=hyperparameters,
        output_path=output_path,
        instance_type=instance_type,
        instance_count=instance_count,
        environment=environment,
    )
    inputs = dict(channels)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        inputs["checkpoints"] = f"file://{checkpoint_dir.resolve()}"
    run_job("training", lambda: estimator.fit(inputs, job_name=job_name, wait=True, logs="All"))
    return estimator.model_data


def training_estimator(
    session: LocalSession,
    *,
    hyperparameters: dict[str, Any],
    output_path: str,
    instance_type: str = "local",
    instance_count: int = 1,
    environment: dict[str, str] | None = None,
) -> Estimator:
    """The generic Estimator run_training fits, on its own so a lesson can inspect it unfitted."""
    return Estimator(
        image_uri=IMAGES["training"],
        role=ROLE,
        instance_count=instance_count,
        instance_type=instance_type,
        output_path=output_path,
        hyperparameters=hyperparameter_strings(hyperparameters),
        environment=training_environment(instance_count) | (environment or {}),
        sagemaker_session=session,
    )
