"""The lesson-2 SageMaker Pipeline without Docker: its definition, gate and step listing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from orchestration.infra.services import ACCESS_KEY, LocalS3
from orchestration.names import IMAGES, ROLE
from orchestration.sagemaker_local import pipeline as smp
from orchestration.sagemaker_local.session import local_session
from preprocessing.job import resolve_source, run_preprocessing
from preprocessing.synthetic import SHAPES

ARTIFACTS = "s3://course/lesson-02"


def _refuse_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Any connection attempt (AWS, the store) fails; returns the telemetry reports made.

    Recorded, not refused: the SDK's telemetry wrapper swallows what its sender raises.
    """

    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    reports: list[tuple] = []
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(
        "sagemaker.telemetry.telemetry_logging._send_telemetry_request",
        lambda *args: reports.append(args),
    )
    return reports


@pytest.fixture(scope="module")
def offline_pipeline(tmp_path_factory):
    """Built once: the SDK validates its config schema on every lookup, seconds per build."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        reports = _refuse_network(monkeypatch)
        scratch = tmp_path_factory.mktemp("scratch")
        session = smp.pipeline_session(LocalS3(scratch, "course", port=1), scratch)
        pipeline = smp.build_pipeline(session, ARTIFACTS)
        definition = smp.definition(pipeline)
        assert reports == []
        return pipeline, definition


@pytest.fixture
def definition(offline_pipeline) -> dict:
    return offline_pipeline[1]


def _steps(definition: dict) -> dict[str, dict]:
    """Every step by name, the condition's branches included."""
    found = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            found |= {inner["Name"]: inner for inner in step["Arguments"].get(branch, [])}
    return found


def test_definition_has_processing_gate_and_training_steps(definition):
    assert [step["Name"] for step in definition["Steps"]] == [smp.PREPROCESS, smp.QUALITY]
    steps = _steps(definition)
    assert {name: step["Type"] for name, step in steps.items()} == {
        smp.PREPROCESS: "Processing",
        smp.QUALITY: "Condition",
        smp.TRAIN: "Training",
        smp.FAIL: "Fail",
    }
    gate = steps[smp.QUALITY]["Arguments"]
    assert [step["Name"] for step in gate["IfSteps"]] == [smp.TRAIN]
    assert [step["Name"] for step in gate["ElseSteps"]] == [smp.FAIL]
    app = steps[smp.PREPROCESS]["Arguments"]["AppSpecification"]
    assert app["ImageUri"] == IMAGES["preprocessing"]
    assert app["ContainerEntrypoint"] == ["python", "-m", "preprocessing"]
    algorithm = steps[smp.TRAIN]["Arguments"]["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == IMAGES["training"]


def test_definition_declares_the_parameters_with_defaults(definition):
    declared = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert declared == {
        "InputData": ("String", None),
        "ArtifactsUri": ("String", ARTIFACTS),
        "Dataset": ("String", "ml-100k"),
        "Policy": ("String", "fail"),
        "Seed": ("Integer", 0),
        "MinUsers": ("Integer", 100),
        "MaxRejectedRows": ("Integer", 0),
        "Model": ("String", "gmf"),
        "Epochs": ("Integer", 2),
    }
    steps = _steps(definition)
    processing = steps[smp.PREPROCESS]["Arguments"]
    assert processing["ProcessingInputs"][0]["S3Input"]["S3Uri"] == {"Get": "Parameters.InputData"}
    arguments = processing["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--dataset") + 1] == {"Get": "Parameters.Dataset"}
    hyperparameters = steps[smp.TRAIN]["Arguments"]["HyperParameters"]
    assert hyperparameters["model"] == {"Get": "Parameters.Model"}
    assert hyperparameters["epochs"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.Epochs"}]}
    }
    assert hyperparameters["num_factors"] == str(smp.DEFAULT_HYPERPARAMETERS["num_factors"])


def test_training_and_gate_depend_on_the_processing_output(definition):
    steps = _steps(definition)
    assert steps[smp.PREPROCESS]["PropertyFiles"] == [
        {"PropertyFileName": "Manifest", "OutputName": smp.OUTPUT, "FilePath": "manifest.json"}
    ]
    channels = steps[smp.TRAIN]["Arguments"]["InputDataConfig"]
    assert [channel["ChannelName"] for channel in channels] == ["train"]
    assert channels[0]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": f"Steps.{smp.PREPROCESS}.ProcessingOutputConfig"
        f".Outputs['{smp.OUTPUT}'].S3Output.S3Uri"
    }
    conditions = steps[smp.QUALITY]["Arguments"]["Conditions"]
    read = [(c["Type"], c["LeftValue"]["Std:JsonGet"]["Path"], c["RightValue"]) for c in conditions]
    assert read == [
        ("GreaterThanOrEqualTo", "counts.users", {"Get": "Parameters.MinUsers"}),
        ("LessThanOrEqualTo", "validation.rows_rejected", {"Get": "Parameters.MaxRejectedRows"}),
    ]
    output = steps[smp.PREPROCESS]["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]
    assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Parameters.ArtifactsUri"},
        {"Get": "Execution.PipelineExecutionId"},
        smp.OUTPUT,
    ]


def test_dependencies_come_from_data_references_and_the_branches(offline_pipeline):
    assert smp.dependencies(offline_pipeline[0]) == {
        smp.PREPROCESS: [],
        smp.QUALITY: [smp.PREPROCESS],
        smp.TRAIN: [smp.QUALITY, smp.PREPROCESS],
        smp.FAIL: [smp.QUALITY, smp.PREPROCESS],
    }


def test_pipeline_session_has_the_course_settings_and_registers_offline(
    offline_pipeline, monkeypatch
):
    pipeline = offline_pipeline[0]
    session = pipeline.sagemaker_session
    scratch = Path(session.config["local"]["container_root"])
    reference = local_session(LocalS3(scratch, "course", port=1), scratch)
    assert session.config == reference.config
    assert session.sagemaker_config == reference.sagemaker_config
    assert session.boto_session.get_credentials().access_key == ACCESS_KEY
    assert session.s3_client.meta.endpoint_url == "http://127.0.0.1:1"
    reports = _refuse_network(monkeypatch)
    # Local mode keeps the pipeline in memory; opted out, the SDK reports nothing.
    assert pipeline.upsert(role_arn=ROLE) == {"PipelineArn": smp.PIPELINE_NAME}
    assert reports == []


def test_manifest_has_what_the_gate_reads(tmp_path):
    source = resolve_source("synthetic", data_dir=None, cache_dir=tmp_path, progress=False)
    run_preprocessing(source, tmp_path / "processed")
    written = json.loads((tmp_path / "processed" / "manifest.json").read_text())
    # Local mode resolves a JsonGet path with this function (imported after localmode set up).
    from sagemaker.local.utils import get_using_dot_notation

    assert get_using_dot_notation(written, "counts.users") == SHAPES["ml-100k"][0]
    assert get_using_dot_notation(written, "validation.rows_rejected") == 0


class _Execution:
    """The shape local mode's ``list_steps()`` answers with."""

    def list_steps(self) -> dict:
        return {
            "PipelineExecutionSteps": [
                {
                    "StepName": "Preprocess",
                    "StepStatus": "Succeeded",
                    "StartTime": 10.0,
                    "EndTime": 17.5,
                    "Metadata": {"ProcessingJob": {"Arn": "Preprocess-1-abcd"}},
                },
                {
                    "StepName": "DataQuality",
                    "StepStatus": "Succeeded",
                    "StartTime": 17.5,
                    "EndTime": 17.5,
                    "Metadata": {"Condition": {"Outcome": False}},
                },
                {
                    "StepName": "DataQualityFailed",
                    "StepStatus": "Failed",
                    "StartTime": 17.5,
                    "EndTime": 17.6,
                    "FailureReason": "Data-quality gate failed: 943 users",
                    "Metadata": {"Fail": {"ErrorMessage": "Data-quality gate failed: 943 users"}},
                },
                {"StepName": "Train", "StepStatus": "Executing", "StartTime": 18.0},
            ]
        }


def test_monitor_flattens_the_execution_steps():
    steps = smp.step_statuses(_Execution())
    assert [(s.name, s.status, s.detail) for s in steps] == [
        ("Preprocess", "Succeeded", "Preprocess-1-abcd"),
        ("DataQuality", "Succeeded", "outcome False"),
        ("DataQualityFailed", "Failed", "Data-quality gate failed: 943 users"),
        ("Train", "Executing", ""),
    ]
    assert steps[0].seconds == pytest.approx(7.5) and steps[3].seconds is None
    table = smp.format_steps(steps).splitlines()
    assert table[0].split() == ["Preprocess", "Succeeded", "7.5", "s", "Preprocess-1-abcd"]


def test_a_failed_job_step_says_its_container_exited_not_which_compose_command_ran():
    reason = (
        "RuntimeError: Failed to run: ['docker-compose', '-f', '/home/me/x/docker-compose.yaml',"
        " 'up', '--build', '--abort-on-container-exit']. Process exited with code: 1"
    )

    class Failed:
        def list_steps(self):
            step = {"StepName": "Preprocess", "StepStatus": "Failed", "FailureReason": reason}
            return {"PipelineExecutionSteps": [step]}

    (step,) = smp.step_statuses(Failed())
    assert step.detail == "its container exited with code 1: the reason is in the job's log"
