#!/usr/bin/env bash
# Build the course's images: the three SageMaker stages and the compose services.
#
#   scripts/build_images.sh            ncf-preprocessing, ncf-training, ncf-inference,
#                                      ncf-training-toolkit, ncf-evaluation, ncf-s3, ncf-mlflow
#   WITH_JUPYTERLAB=1 scripts/build_images.sh     ... and ncf-jupyterlab
#
# Every image installs the pins of its lock file (locks/, from pyproject.toml by `make lock`) with
# `pip install --no-index` from a host wheelhouse (build/wheelhouse, made here with `pip wheel`
# from the same locks) bind-mounted into the build, so builds need no package index and no wheel
# lands in a layer. Needs a running Docker engine, not root.
# Environment: BASE_IMAGE (default python:3.11-slim-bookworm; the offline bootstrap passes
# ncf-base:bookworm), PYTHON (the interpreter for `pip wheel`), DOCKER (a BuildKit-capable CLI).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
PYTHON=${PYTHON:-python3}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELHOUSE=$REPO_ROOT/build/wheelhouse
WHEELHOUSE_STAMP=$WHEELHOUSE/.complete
# The locks the images install from; the wheelhouse holds the union of their pins.
IMAGE_LOCKS=(preprocessing torch training inference toolkit evaluation mlflow jupyterlab)

# shellcheck source=scripts/common.sh
source "$REPO_ROOT/scripts/common.sh"

DOCKER=${DOCKER:-/usr/bin/docker} # on the course's CI machines /usr/local/bin/docker lacks buildx
[[ -x $DOCKER ]] || DOCKER=$(command -v docker) ||
    die "no docker command: install Docker (Docker Engine or Docker Desktop) and rerun"

build_wheelhouse() {
    step "Wheelhouse $WHEELHOUSE"
    local locks=("${IMAGE_LOCKS[@]/#/$REPO_ROOT/locks/}") wanted
    locks=("${locks[@]/%/.txt}")
    wanted=$(cat "${locks[@]}" | sha256sum | cut -d' ' -f1)
    if [[ -f $WHEELHOUSE_STAMP && $(cat "$WHEELHOUSE_STAMP") == "$wanted" ]]; then
        info "up to date with locks/"
        return
    fi
    local tmp=$WHEELHOUSE.tmp log=$REPO_ROOT/build/pip-wheel.log
    rm -rf "$tmp"
    mkdir -p "$REPO_ROOT/build"
    info "pip wheel: the pins of locks/{$(IFS=,; echo "${IMAGE_LOCKS[*]}")}.txt (log: $log)"
    # With their dependencies: the CUDA build of torch needs packages a CPU lock does not name.
    "$PYTHON" -m pip wheel --wheel-dir "$tmp" "${locks[@]/#/--requirement=}" >"$log" 2>&1 ||
        die "pip wheel failed (last lines of $log below); check that PyPI and the torch
    find-links (pip config list) are reachable:
$(tail -n 15 "$log")"
    if [[ $BASE_IMAGE != *cuda* ]] && compgen -G "$tmp/nvidia_*" >/dev/null; then
        die "the wheelhouse holds CUDA packages ($(cd "$tmp" && ls nvidia_* | tr '\n' ' '));
    pip did not pick a CPU torch wheel: add its find-links (https://download.pytorch.org/whl/cpu)"
    fi
    rm -rf "$WHEELHOUSE"
    mv "$tmp" "$WHEELHOUSE"
    echo "$wanted" >"$WHEELHOUSE_STAMP"
    info "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

# build_image TAG DOCKERFILE [TARGET [NAME=VALUE ...]]: the NAME=VALUEs are extra build args
build_image() {
    local tag=$1 dockerfile=$2 target=${3:-} started=$SECONDS
    step "Image $tag (from $BASE_IMAGE)"
    # The label is orchestration/names.py's IMAGE_LABEL: `make clean` prunes old versions by it.
    local args=(build --quiet --label ncf-course --build-arg "BASE_IMAGE=$BASE_IMAGE"
        -f "$REPO_ROOT/$dockerfile" -t "$tag")
    [[ -z $target ]] || args+=(--target "$target")
    local build_arg
    for build_arg in "${@:4}"; do
        args+=(--build-arg "$build_arg")
    done
    DOCKER_BUILDKIT=1 "$DOCKER" "${args[@]}" "$REPO_ROOT" >/dev/null ||
        die "docker build of $tag failed; rerun without --quiet to see why:
    DOCKER_BUILDKIT=1 $DOCKER ${args[*]/--quiet/} $REPO_ROOT"
    info "$("$DOCKER" image inspect -f '{{.Size}}' "$tag" | numfmt --to=si)B in $((SECONDS - started)) s"
}

main() {
    local started=$SECONDS
    "$DOCKER" info >/dev/null 2>&1 ||
        die "no Docker engine answers; start it (sudo scripts/bootstrap.sh does) and rerun"
    build_wheelhouse
    build_image ncf-preprocessing:latest Dockerfile preprocessing
    build_image ncf-training:latest Dockerfile training
    build_image ncf-inference:latest Dockerfile inference
    build_image ncf-training-toolkit:latest Dockerfile training-toolkit
    build_image ncf-evaluation:latest Dockerfile evaluation
    build_image ncf-s3:latest services/Dockerfile s3
    build_image ncf-mlflow:latest services/Dockerfile mlflow
    # The project is installed editable at the path compose mounts it at (PROJECT_DIR: ${PWD},
    # run from the repository root); any other path leaves the notebooks unable to import it.
    [[ -z ${WITH_JUPYTERLAB:-} ]] ||
        build_image ncf-jupyterlab:latest services/Dockerfile jupyterlab "PROJECT_DIR=$REPO_ROOT"
    step "Images built in $((SECONDS - started)) s"
}

main "$@"
