#!/usr/bin/env bash
# Pin every dependency of pyproject.toml into locks/ with pip-compile (pip-tools):
#
#   locks/all.txt            every extra: the host's virtual environment (requirements.txt)
#   locks/preprocessing.txt  the project's dependencies only: the preprocessing image (no torch)
#   locks/torch.txt          ... and torch: the layer the training and inference images share
#   locks/training.txt       ... and the training extra: the training image
#   locks/inference.txt      ... and the serving extra: the inference image (no tracking client)
#   locks/toolkit.txt        ... training and SageMaker's training toolkit: the script-mode image
#   locks/evaluation.txt     ... training and matplotlib: the evaluation image
#   locks/mlflow.txt         the tracking-server extra: the MLflow service image
#   locks/jupyterlab.txt     serving, notebooks and localmode: the JupyterLab image
#
# all.txt is resolved first and every other file against it (-c), so an image never gets a version
# the host does not have. The wheelhouse (scripts/build_images.sh) is made from the image locks.
# Run after editing a dependency in pyproject.toml (`make lock`); tests/unit/test_locks.py fails
# until the pins satisfy pyproject.toml again.
#
# pip-compile resolves for the Python it runs under, so it runs under the oldest Python the
# images have: the offline base's Debian 3.11.2 (/usr/bin/python3 on Debian bookworm). Under a
# newer 3.11 it picks releases that need 3.11.5 and the offline images cannot install them.
# PYTHON overrides it; pip-tools is installed into build/lock-venv.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
VENV=$REPO_ROOT/build/lock-venv
COMPILER=$VENV/bin/pip-compile
LOCKS=$REPO_ROOT/locks

# shellcheck source=scripts/common.sh
source "$REPO_ROOT/scripts/common.sh"

# lock NAME [pip-compile options]
lock() {
    local name=$1
    info "locks/$name.txt"
    # The project itself is never pinned (the images copy its code; the host installs it
    # editable), nor is pip (each environment keeps its own).
    (cd "$REPO_ROOT" && "$COMPILER" --quiet --no-header --annotation-style=line --strip-extras \
        --unsafe-package ncf-sagemaker-local --unsafe-package pip --no-emit-index-url \
        --no-emit-find-links --no-emit-trusted-host --resolver=backtracking \
        --output-file "locks/$name.txt" "${@:2}" pyproject.toml) ||
        die "pip-compile of locks/$name.txt failed (its messages above)"
    # pip-compile pins the build of torch it found (2.13.0+cpu where the CPU wheel is on the
    # find-links); the version alone also admits the CUDA build of the same release on a GPU box.
    sed -i -E 's/^(torch==[^+ ]+)\+[A-Za-z0-9.]+/\1/' "$LOCKS/$name.txt"
}

lock_tool() {
    [[ -x $PYTHON ]] || PYTHON=$(command -v python3.11) ||
        die "no Python 3.11 to resolve for: set PYTHON to the images' interpreter"
    if [[ ! -x $COMPILER ]]; then
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip "pip-tools>=7.4,<8"
    fi
    info "pip-compile $("$COMPILER" --version | cut -d' ' -f3) under $("$VENV/bin/python" --version)"
}

main() {
    step "Locks from pyproject.toml"
    lock_tool
    mkdir -p "$LOCKS"
    lock all --all-extras
    local constraint=(--constraint locks/all.txt)
    lock preprocessing "${constraint[@]}"
    lock torch --extra torch "${constraint[@]}"
    lock training --extra training "${constraint[@]}"
    lock inference --extra serving "${constraint[@]}"
    lock toolkit --extra toolkit "${constraint[@]}"
    lock evaluation --extra evaluation "${constraint[@]}"
    lock mlflow --extra tracking-server "${constraint[@]}"
    lock jupyterlab --extra serving --extra notebooks --extra localmode "${constraint[@]}"
}

main "$@"
