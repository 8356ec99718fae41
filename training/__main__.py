"""``python -m training``: the training entry point, on a laptop and inside a SageMaker container.

SageMaker's contract (``training.sagemaker_contract``) gives the defaults: the ``train``
channel, the ``gmf`` / ``mlp`` channels for NeuMF pre-training, the ``checkpoints`` channel, the
model and output folders and the hosts, from ``SM_*`` variables or, in our bring-your-own
container, from ``/opt/ml``; hyperparameters come from ``input/config/hyperparameters.json``
and the command line. Flags always win; a hyperparameter neither gives takes the value of the
model's course recipe (``training.recipes``), else ``TrainConfig``'s, so ``--model gmf`` alone
trains the course's GMF. With several hosts every one runs this program as one rank of a
data-parallel job (``training.distributed``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from preprocessing.manifest import ManifestError
from preprocessing.schema import SchemaError
from training.artifacts import ArtifactError, extract_model_archive
from training.checkpoint import CheckpointError
from training.config import GPU_CHOICES, LOSS_NAMES, MODELS, ConfigError, TrainConfig
from training.distributed import process_group
from training.recipes import RECIPES, recipe_name
from training.sagemaker_contract import ContractError, TrainingContract
from training.tracking import default_tracking_uri
from training.train import DeviceError, NonFiniteLossError, TrainingInterrupted, resolve_device

EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what an orchestrator expects from a stopped job

log = logging.getLogger(__name__)


def build_parser(contract: TrainingContract) -> argparse.ArgumentParser:
    env = contract.env.get
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train GMF, MLP or NeuMF on a processed split."
    )
    hyperparameters = parser.add_argument_group(
        "hyperparameters",
        "also read from hyperparameters.json; one given neither way takes the model's recipe "
        "value (training/recipes.py) where the recipe has one, else the fixed default",
    )
    hyperparameters.add_argument(
        "--model",
        choices=MODELS,
        default=TrainConfig.model,
        help="GMF, MLP or NeuMF (He et al.); its recipe, neumf-pretrained for NeuMF given both "
        "--pretrained-gmf and --pretrained-mlp, fills the flags left out "
        f"(default: {TrainConfig.model})",
    )
    flag = partial(_hyperparameter, hyperparameters.add_argument)
    flag("--num-factors", "GMF embedding size (predictive factors; NeuMF's GMF half)", type=int)
    flag("--layers", "MLP sizes; the first is the user and item embeddings joined", type=_int_list)
    flag("--learning-rate", "Adam's step size", type=float)
    flag("--gpu", "auto: CUDA when there is one", type=str.lower, choices=GPU_CHOICES)
    flag("--epochs", "at most; early stopping on validation may end sooner", type=int)
    flag(
        "--batch-size",
        "positives per micro-batch; each brings --num-negatives negatives, so a batch has "
        "(1 + num_negatives) times as many rows and an epoch that many times fewer optimiser "
        "steps than the same number counted in samples, as guoyang9/NCF counts it",
        type=int,
    )
    flag("--num-negatives", "negatives sampled per positive, afresh each epoch", type=int)
    flag(
        "--loss",
        "bce: the paper's log loss; bpr: pairwise; softmax: a positive against its negatives",
        choices=LOSS_NAMES,
    )
    flag("--l2", "Adam's weight decay on every parameter", type=float)
    flag(
        "--recency-weight",
        "extra loss weight for a user's recent positives (0: the paper's loss)",
        type=float,
    )
    flag(
        "--latest-weight",
        "extra loss weight for a user's last few positives, fading with --latest-span (0: off)",
        type=float,
    )
    flag(
        "--latest-span",
        "positives back from the latest over which that weight falls by a factor e",
        type=float,
    )
    flag("--seed", "initial weights, negatives and batch order all follow it", type=int)
    flag("--patience", "epochs without a better validation NDCG before stopping", type=int)
    flag("--alpha", "NeuMF from pre-trained halves: the GMF output layer's weight", type=float)
    flag(
        "--ema-decay",
        "evaluate and save a moving average of the weights with this decay per step (0: off)",
        type=float,
    )
    flag(
        "--amp",
        "mixed precision: bf16 (fp16 where bf16 is emulated) on CUDA, bf16 for MLP and NeuMF "
        "on CPUs with bf16 units",
        type=_bool,
    )
    flag(
        "--cuda-graphs",
        "replay each training step as one CUDA graph (GPU only; false to debug eagerly)",
        type=_bool,
    )
    flag(
        "--grad-accumulation",
        "micro-batches per optimiser step, which averages the loss over all their rows",
        type=int,
    )
    flag("--top-k", "K of HR@K, NDCG@K and MAP@K", type=int)
    flag(
        "--refit",
        "after early stopping, retrain on train + validation for the chosen epochs",
        type=_bool,
    )
    parser.add_argument("--train", type=Path, help="default: the job's train channel")
    parser.add_argument("--model-dir", type=Path, default=contract.model_dir())
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=contract.checkpoint_dir(),
        help="default: the checkpoints channel, else /opt/ml/checkpoints when it exists",
    )
    parser.add_argument("--pretrained-gmf", type=Path, default=contract.channel("gmf"))
    parser.add_argument("--pretrained-mlp", type=Path, default=contract.channel("mlp"))
    parser.add_argument(
        "--tracking-uri",
        default=env("MLFLOW_TRACKING_URI"),
        help="MLflow server or store (default: $MLFLOW_TRACKING_URI, else a local SQLite store)",
    )
    parser.add_argument("--experiment", default=env("MLFLOW_EXPERIMENT_NAME", "ncf"))
    parser.add_argument(*_spellings("--run-name"), default=contract.job_name)
    return parser


def _hyperparameter(
    add_argument: Callable[..., argparse.Action], name: str, help: str, **kwargs: Any
) -> None:
    """A flag left out stays None: which recipe fills it depends on --model and the pre-trained
    folders, known only once all flags are read (``config_from_args``)."""
    field = name.removeprefix("--").replace("-", "_")
    if field == "layers":  # each word is a list (``64,32`` or ``64``)
        kwargs["nargs"] = "+"
    add_argument(*_spellings(name), help=f"{help} ({_default_help(field)})", **kwargs)


def _spellings(flag: str) -> tuple[str, ...]:
    """``--num-factors`` and ``--num_factors``: SageMaker's training toolkit (script mode) passes
    each hyperparameter as ``--<key as given>``, so a key with an underscore arrives that way."""
    underscored = flag.replace("-", "_").replace("__", "--", 1)
    return (flag,) if underscored == flag else (flag, underscored)


def _default_help(field: str) -> str:
    """Where a left-out flag's value comes from: the recipes that set it (grouped by value),
    then TrainConfig for the others, read from both so --help cannot drift from them."""
    fixed = _shown(getattr(TrainConfig, field))
    by_value: dict[str, list[str]] = {}
    for recipe, values in RECIPES.items():
        if field in values:
            by_value.setdefault(_shown(values[field]), []).append(recipe)
    if not by_value:
        return f"default: {fixed}"
    parts = [f"{value} for {', '.join(recipes)}" for value, recipes in by_value.items()]
    if sum(map(len, by_value.values())) < len(RECIPES):
        parts.append(f"else {fixed}")
    return "default: the model's recipe: " + "; ".join(parts)


def _shown(value: Any) -> str:
    """A value as it would be typed on the command line."""
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _int_list(text: str) -> list[int]:
    """Accepts ``64``, ``64,32`` or ``[64, 32]`` so JSON hyperparameters work too."""
    try:
        return [int(part) for part in text.strip("[] ").replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's hyperparameters: the flags given, then the model's recipe, then TrainConfig's
    defaults; ``--layers 64,32 16`` and ``--layers 64 32 16`` are one list."""
    given = {
        key: value
        for key, value in vars(args).items()
        if key in TrainConfig.__dataclass_fields__ and value is not None
    }
    if "layers" in given:
        given["layers"] = [n for group in given["layers"] for n in group]
    recipe = recipe_name(args.model, pretrained=bool(args.pretrained_gmf and args.pretrained_mlp))
    log.info("hyperparameters: the %s recipe (training/recipes.py), then the flags given", recipe)
    return TrainConfig(**RECIPES[recipe] | given)


def hyperparameter_args(config_dir: Path) -> list[str]:
    """SageMaker's hyperparameters.json (all values strings) as command-line flags."""
    path = config_dir / "hyperparameters.json"
    if not path.is_file():
        return []
    args = []
    for key, value in json.loads(path.read_text()).items():
        if key.startswith("sagemaker_"):
            continue
        args.append(f"--{key.replace('_', '-')}")
        args.extend(str(value).strip('"').split() if key == "layers" else [str(value).strip('"')])
    return args


def _model_folder(path: Path | None, scratch: Path) -> Path | None:
    """A channel may hold a model folder or SageMaker's model.tar.gz; give back a folder (the
    archive unpacked into ``scratch``, which the caller removes: host runs share /tmp)."""
    if path is None or not (path / "model.tar.gz").is_file():
        return path
    return extract_model_archive(path / "model.tar.gz", scratch)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    contract = TrainingContract.from_environment()
    argv = hyperparameter_args(contract.config_dir) + list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(contract)
    args = parser.parse_args(argv)
    try:
        args.train = args.train or contract.require_channel("train")
    except ContractError as exc:
        parser.error(f"{exc}, or pass --train DIR")
    try:
        cluster = contract.cluster()
    except ContractError as exc:
        parser.error(str(exc))
    if args.model_dir is None:
        parser.error("no model folder: pass --model-dir DIR or set SM_MODEL_DIR")
    if not args.train.is_dir():
        parser.error(f"the training channel {args.train} does not exist or is not a folder")
    from training.job import run_training

    try:
        config = config_from_args(args)
        with (
            tempfile.TemporaryDirectory(prefix="pretrained-") as scratch,
            process_group(cluster, resolve_device(config.gpu)) as group,
        ):
            metrics = run_training(
                config,
                args.train,
                args.model_dir,
                checkpoint_dir=args.checkpoint_dir,
                pretrained_gmf=_model_folder(args.pretrained_gmf, Path(scratch) / "gmf"),
                pretrained_mlp=_model_folder(args.pretrained_mlp, Path(scratch) / "mlp"),
                tracking_uri=args.tracking_uri
                or default_tracking_uri(contract.output_data_dir() or Path("mlruns")),
                experiment=args.experiment,
                run_name=args.run_name,
                group=group,
            )
    except ConfigError as exc:
        return _fail(f"invalid hyperparameter: {exc}", 2, contract)
    except (
        ManifestError,
        SchemaError,
        ArtifactError,
        CheckpointError,
        NonFiniteLossError,
        DeviceError,
    ) as exc:
        return _fail(str(exc), 1, contract)
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = {k: v for k, v in metrics.items() if not k.endswith("history")}
    print(json.dumps(summary, indent=2))
    return 0


def _fail(message: str, code: int, contract: TrainingContract) -> int:
    """Print the reason and leave it where SageMaker shows it as the job's FailureReason."""
    print(f"error: {message}", file=sys.stderr)
    output_dir = contract.output_dir()
    if output_dir and output_dir.is_dir():
        (output_dir / "failure").write_text(message + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
