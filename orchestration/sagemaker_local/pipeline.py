"""Lesson 2's SageMaker Pipeline, run by local mode: preprocess -> data-quality gate -> train.

A pipeline is a DAG the service runs for you; here ``LocalPipelineSession`` runs the same
definition on this machine, each job a local-mode container in the course's images. The gate
reads the processing job's own ``manifest.json`` through a ``PropertyFile``, so a run whose data
looks wrong (too few users, rejected rows) stops at a ``FailStep`` with a message instead of
training on it. It reuses the package's session settings, images and container contract.

Local mode runs a pipeline synchronously: ``Pipeline.start`` returns once the execution ended.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker.inputs import TrainingInput
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import (
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline, PipelineGraph
from sagemaker.workflow.pipeline_context import LocalPipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from orchestration.infra.services import LocalS3
from orchestration.names import ROLE
from orchestration.sagemaker_local.jobs import (
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    preprocessing_processor,
    training_estimator,
)
from orchestration.sagemaker_local.session import local_session

# Every definition warns that job names are left to each execution, which is what we want.
logging.getLogger("sagemaker.workflow.utilities").setLevel(logging.ERROR)

PIPELINE_NAME = "ncf-preprocess-train"
PREPROCESS, QUALITY, TRAIN, FAIL = "Preprocess", "DataQuality", "Train", "DataQualityFailed"
OUTPUT = "processed"  # the processing output's name, and its folder under each execution
MODEL_FOLDER = "model"
# The gate reads the manifest the processing stage writes anyway (counts, validation report).
MANIFEST = PropertyFile(name="Manifest", output_name=OUTPUT, path="manifest.json")
# Small and fixed for every run; what a learner varies per run is a pipeline parameter.
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {"num_factors": 16, "batch_size": 1024}


def pipeline_session(store: LocalS3, scratch: Path) -> LocalPipelineSession:
    """``local_session``'s settings on the session class pipelines need.

    LocalPipelineSession takes no ``sagemaker_config`` argument, so the settings (keys, region,
    telemetry opt-out, local config) are copied from a session made the course's one way.
    """
    template = local_session(store, scratch)
    session = LocalPipelineSession(
        boto_session=template.boto_session,
        default_bucket=store.bucket,
        s3_endpoint_url=store.endpoint_url,
    )
    session.sagemaker_config = template.sagemaker_config
    session.config = template.config
    return session


def pipeline_parameters(artifacts_uri: str) -> dict[str, ParameterString | ParameterInteger]:
    """What a run may change without a new pipeline definition; input data has no default."""
    return {
        "input_data": ParameterString("InputData"),
        "artifacts": ParameterString("ArtifactsUri", default_value=artifacts_uri),
        "dataset": ParameterString("Dataset", default_value="ml-100k"),
        "policy": ParameterString("Policy", default_value="fail", enum_values=["fail", "drop"]),
        "seed": ParameterInteger("Seed", default_value=0),
        "min_users": ParameterInteger("MinUsers", default_value=100),
        "max_rejected": ParameterInteger("MaxRejectedRows", default_value=0),
        "model": ParameterString("Model", default_value="gmf", enum_values=["gmf", "mlp", "neumf"]),
        "epochs": ParameterInteger("Epochs", default_value=2),
    }


def build_pipeline(
    session: LocalPipelineSession,
    artifacts_uri: str,
    *,
    training_instance_type: str = "local",
    tracking_uri: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    name: str = PIPELINE_NAME,
) -> Pipeline:
    """The DAG; every execution writes under ``<ArtifactsUri>/<execution id>/``.

    Processing is CPU work on any machine, so only training takes ``local_gpu``.
    """
    p = pipeline_parameters(artifacts_uri)
    processed = preprocess_step(session, p)
    processed_uri = processed.properties.ProcessingOutputConfig.Outputs[OUTPUT].S3Output.S3Uri
    train = train_step(
        session,
        p,
        processed_uri,
        instance_type=training_instance_type,
        tracking_uri=tracking_uri,
        hyperparameters=hyperparameters,
    )
    users = JsonGet(step_name=processed.name, property_file=MANIFEST, json_path="counts.users")
    rejected = JsonGet(
        step_name=processed.name, property_file=MANIFEST, json_path="validation.rows_rejected"
    )
    fail = FailStep(name=FAIL, error_message=gate_message(users, rejected, p, processed_uri))
    gate = ConditionStep(
        name=QUALITY,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=users, right=p["min_users"]),
            ConditionLessThanOrEqualTo(left=rejected, right=p["max_rejected"]),
        ],
        if_steps=[train],
        else_steps=[fail],
    )
    return Pipeline(
        name=name,
        parameters=list(p.values()),
        steps=[processed, gate],
        sagemaker_session=session,
    )


def definition(pipeline: Pipeline) -> dict[str, Any]:
    """The JSON the SageMaker service would receive for this pipeline, as a dict."""
    return json.loads(pipeline.definition())


def dependencies(pipeline: Pipeline) -> dict[str, list[str]]:
    """Each step and the steps it waits for, as the SDK's own DAG has them.

    Nobody wires these by hand: a step that reads another's property (an output URI, a
    ``JsonGet``) or sits in a condition's branch depends on it.
    """
    graph = PipelineGraph.from_pipeline(pipeline)
    return {
        name: sorted(up for up, downstream in graph.adjacency_list.items() if name in downstream)
        for name in graph.step_map
    }


@contextmanager
def _recording_only() -> Iterator[None]:
    """Inside a pipeline session a job call only records its request, which is the point; the
    SDK warns about it every time."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        yield


def _in_execution_folder(p: dict[str, Any], folder: str) -> Join:
    """``<ArtifactsUri>/<execution id>/<folder>``, resolved when the execution runs."""
    return Join(on="/", values=[p["artifacts"], ExecutionVariables.PIPELINE_EXECUTION_ID, folder])


def gate_message(users: JsonGet, rejected: JsonGet, p: dict[str, Any], processed_uri: Any) -> Join:
    """The FailStep's message: the counts the gate saw, its limits and where the evidence is."""
    return Join(
        on=" ",
        values=[
            "Data-quality gate failed:",
            users,
            "users (at least",
            p["min_users"],
            "needed),",
            rejected,
            "rejected rows (at most",
            p["max_rejected"],
            "allowed). The manifest and any rejects.csv are in",
            processed_uri,
        ],
    )


def preprocess_step(session: LocalPipelineSession, p: dict[str, Any]) -> ProcessingStep:
    """The ``Preprocess`` step: the preprocessing image, the raw data in, the processed split out
    under the execution's folder, its manifest registered as the gate's property file."""
    processor = preprocessing_processor(session)
    with _recording_only():
        step_args = processor.run(
            inputs=[ProcessingInput(p["input_data"], PROCESSING_INPUT, input_name="raw")],
            outputs=[
                ProcessingOutput(
                    source=PROCESSING_OUTPUT,
                    destination=_in_execution_folder(p, OUTPUT),
                    output_name=OUTPUT,
                )
            ],
            arguments=[
                *("--dataset", p["dataset"], "--policy", p["policy"]),
                *("--seed", p["seed"].to_string(), "--no-progress"),
            ],
        )
    return ProcessingStep(name=PREPROCESS, step_args=step_args, property_files=[MANIFEST])


def train_step(
    session: LocalPipelineSession,
    p: dict[str, Any],
    processed_uri: Any,
    *,
    instance_type: str = "local",
    tracking_uri: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> TrainingStep:
    """The ``Train`` step: the training image's Estimator on the processed split; model, epochs
    and seed are pipeline parameters, known only when an execution starts."""
    estimator = training_estimator(
        session,
        hyperparameters=DEFAULT_HYPERPARAMETERS if hyperparameters is None else hyperparameters,
        output_path=_in_execution_folder(p, MODEL_FOLDER),
        instance_type=instance_type,
        environment={"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else None,
    )
    # Values known only when an execution starts; the SDK turns them into strings then.
    estimator.set_hyperparameters(model=p["model"], epochs=p["epochs"], seed=p["seed"])
    with _recording_only():
        step_args = estimator.fit(inputs={"train": TrainingInput(s3_data=processed_uri)})
    return TrainingStep(name=TRAIN, step_args=step_args)


@dataclass(frozen=True)
class StepStatus:
    """One row of ``execution.list_steps()``, flattened for printing."""

    name: str
    status: str
    seconds: float | None
    detail: str  # the job name, the condition's outcome or the failure reason


@dataclass(frozen=True)
class PipelineRun:
    """What an ended execution left: its status, its steps and where its artifacts are."""

    execution_id: str
    status: str  # Succeeded or Failed
    failure_reason: str | None
    steps: list[StepStatus]
    processed: str  # s3:// folder the processing step writes (Parquet tables, manifest.json)
    model_data: str | None  # s3:// URI of model.tar.gz; None when training did not run

    @property
    def statuses(self) -> dict[str, str]:
        return {step.name: step.status for step in self.steps}


def execute(pipeline: Pipeline, parameters: dict[str, str | int]) -> PipelineRun:
    """Register (upsert) and run the pipeline; returns when the execution has ended.

    ``parameters`` maps pipeline parameter names (``InputData``, ``Epochs``, ...) to values; the
    rest keep their defaults. A failed execution is returned, not raised: its steps say why.
    """
    pipeline.upsert(role_arn=ROLE)
    execution = pipeline.start(parameters=parameters)
    values = {param.name: param.default_value for param in pipeline.parameters} | parameters
    steps = step_statuses(execution)
    description = execution.describe()
    training = next((s for s in steps if s.name == TRAIN and s.status == "Succeeded"), None)
    client = pipeline.sagemaker_session.sagemaker_client
    model_data = (
        client.describe_training_job(training.detail)["ModelArtifacts"]["S3ModelArtifacts"]
        if training
        else None
    )
    execution_id = description["PipelineExecutionArn"]
    return PipelineRun(
        execution_id=execution_id,
        status=description["PipelineExecutionStatus"],
        failure_reason=description.get("FailureReason"),
        steps=steps,
        processed=f"{values['ArtifactsUri']}/{execution_id}/{OUTPUT}",  # _in_execution_folder
        model_data=model_data,
    )


def step_statuses(execution: Any) -> list[StepStatus]:
    """The steps an execution has reached when asked (read once, not watched), in order;
    skipped branches are absent."""
    rows = []
    for step in execution.list_steps()["PipelineExecutionSteps"]:
        started, ended = step.get("StartTime"), step.get("EndTime")
        rows.append(
            StepStatus(
                name=step["StepName"],
                status=step["StepStatus"],
                seconds=None if started is None or ended is None else ended - started,
                detail=_failure(step.get("FailureReason"))
                or _metadata_detail(step.get("Metadata", {})),
            )
        )
    return rows


# Local mode reports a job container's non-zero exit as the compose command it ran (host paths
# included); the container's own reason is in its log.
_COMPOSE_FAILED = re.compile(
    r"RuntimeError: Failed to run: \[.*\]\. Process exited with code: (\d+)"
)


def _failure(reason: str | None) -> str:
    """A failed step's reason; a job container's exit said as such, not as a compose command."""
    if reason and (compose := _COMPOSE_FAILED.fullmatch(reason.strip())):
        return f"its container exited with code {compose[1]}: the reason is in the job's log"
    return reason or ""


def _metadata_detail(metadata: dict[str, Any]) -> str:
    """The job name of a job step, or the outcome of a condition step (local mode's shapes)."""
    for kind, value in metadata.items():
        if "Arn" in value:
            return value["Arn"]
        if kind == "Condition":
            return f"outcome {value['Outcome']}"
    return ""


def format_steps(steps: list[StepStatus]) -> str:
    """One aligned line per step, the way a console lists an execution."""
    width = max((len(step.name) for step in steps), default=0)
    return "\n".join(
        f"{step.name:<{width}}  {step.status:<9}  "
        f"{'' if step.seconds is None else f'{step.seconds:6.1f} s'}  {step.detail}"
        for step in steps
    )
