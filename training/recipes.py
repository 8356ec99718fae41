"""The model recipes: the hyperparameters the main job and the accuracy benchmark train with.

Keys are ``TrainConfig`` fields (``training.config``), turned into the training entry point's
flags by whoever launches a job; the entry point also fills every flag left out from the run's
recipe (``recipe_name``), so ``python -m training --model gmf`` trains the course's GMF. Every
value was chosen on the ML-100K validation hold-out, never on test; docs/training.md ("Recipes")
says how, and docs/benchmarks.md holds the figures.
"""

from __future__ import annotations

from typing import Any

_GMF_SIZE = {"num_factors": 64}
_MLP_SIZE = {"layers": (256, 128, 64, 32)}
# What every recipe starts from. A user's recent and last few positives weigh more in the loss
# (the next pick follows the session a user is in); a little weight decay; and the moving average
# of the weights (decay 0.995 a step, about two ML-100K epochs) is what is evaluated and saved.
# Each lifted every model's validation NDCG@10.
_SHARED_SETTINGS = {
    "recency_weight": 5.0,
    "latest_weight": 20.0,
    "latest_span": 5.0,
    "l2": 1e-6,
    "ema_decay": 0.995,
}
RECIPES: dict[str, dict[str, Any]] = {
    "gmf": {
        "model": "gmf",
        **_GMF_SIZE,
        **_SHARED_SETTINGS,
        "num_negatives": 16,
        "learning_rate": 0.002,
        "batch_size": 512,
    },
    # Batches of 2,048 tie on validation but need more epochs, so a run takes as long: 1,024
    # stays. The MLP's tower wants more weight decay than the shared setting.
    "mlp": {
        "model": "mlp",
        **_MLP_SIZE,
        **_SHARED_SETTINGS,
        "l2": 3e-5,
        "num_negatives": 8,
        "learning_rate": 0.003,
        "batch_size": 1024,
    },
    "neumf": {
        "model": "neumf",
        **_GMF_SIZE,
        **_MLP_SIZE,
        **_SHARED_SETTINGS,
        "num_negatives": 4,
        "learning_rate": 0.003,
        "batch_size": 2048,
    },
}
# Fine-tuning pre-trained halves: a small step keeps what they learned (the paper uses SGD);
# alpha 0.6 leans on the stronger GMF half.
RECIPES["neumf-pretrained"] = RECIPES["neumf"] | {"learning_rate": 0.0001, "alpha": 0.6}


def recipe_name(model: str, *, pretrained: bool) -> str:
    """The recipe a run of ``model`` trains with: NeuMF fine-tuning pre-trained GMF and MLP
    halves needs its own (a far smaller step), every other run its model's."""
    return "neumf-pretrained" if model == "neumf" and pretrained else model
