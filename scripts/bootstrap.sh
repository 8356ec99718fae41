#!/usr/bin/env bash
# Offline image bootstrap for the course's SageMaker local-mode containers.
#
# Run as root on Debian bookworm from anywhere: installs the Docker engine, starts dockerd, makes
# the offline base image ncf-base:bookworm with debootstrap, builds a host wheelhouse of the
# project's dependencies and builds ncf-preprocessing:latest and ncf-training:latest.
# Idempotent: every step is skipped when its result is already there.
#
# Environment overrides: BASE_IMAGE (default ncf-base:bookworm; set python:3.11-slim-bookworm
# where a registry is reachable), DEBIAN_MIRROR, PYTHON (the host interpreter for `pip wheel`).
set -euo pipefail

DOCKER=/usr/bin/docker # /usr/local/bin/docker (first on PATH) has no buildx/compose
BASE_IMAGE=${BASE_IMAGE:-ncf-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELHOUSE=$REPO_ROOT/build/wheelhouse
WHEELHOUSE_STAMP=$WHEELHOUSE/.complete
DOCKERD_LOG=/var/log/dockerd.log

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (apt-get, dockerd and debootstrap need it): sudo $0"
}

install_packages() {
    step "System packages: docker.io, docker-compose, debootstrap"
    local missing=()
    [[ -x $DOCKER ]] || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]} == 0)); then
        info "already installed"
        return
    fi
    info "installing ${missing[*]} with apt-get"
    apt-get update -qq || die "apt-get update failed: check the network or the apt sources"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
}

start_dockerd() {
    step "Docker engine"
    if "$DOCKER" info >/dev/null 2>&1; then
        info "dockerd already answers"
        return
    fi
    info "starting dockerd in the background (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    local waited=0
    until "$DOCKER" info >/dev/null 2>&1; do
        ((waited < 60)) || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
        sleep 1
        waited=$((waited + 1))
    done
    info "dockerd answers after ${waited} s"
}

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

make_base_image() {
    step "Base image $BASE_IMAGE"
    if image_exists "$BASE_IMAGE"; then
        info "already present"
        return
    fi
    [[ $BASE_IMAGE == ncf-base:bookworm ]] ||
        die "$BASE_IMAGE is missing and only ncf-base:bookworm can be made offline; pull it first"
    ROOTFS=$(mktemp -d /var/tmp/ncf-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    local rootfs=$ROOTFS
    info "debootstrap bookworm (minbase + python3) into $rootfs (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 ||
        die "debootstrap failed; see $rootfs.log"
    info "importing the root file system as $BASE_IMAGE"
    tar -C "$rootfs" -c . | "$DOCKER" import -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
}

build_wheelhouse() {
    step "Wheelhouse $WHEELHOUSE"
    if [[ -f $WHEELHOUSE_STAMP && $WHEELHOUSE_STAMP -nt $REPO_ROOT/pyproject.toml ]]; then
        info "up to date with pyproject.toml"
        return
    fi
    local tmp=$WHEELHOUSE.tmp log=$REPO_ROOT/build/pip-wheel.log
    rm -rf "$tmp"
    mkdir -p "$REPO_ROOT/build"
    info "pip wheel: the project and all its dependencies (torch from the CPU find-links; log: $log)"
    "$PYTHON" -m pip wheel --wheel-dir "$tmp" "$REPO_ROOT" >"$log" 2>&1 ||
        die "pip wheel failed (last lines of $log below); check that PyPI and the torch CPU
    find-links (pip config list) are reachable:
$(tail -n 15 "$log")"
    if compgen -G "$tmp/nvidia_*" >/dev/null || compgen -G "$tmp/triton-*" >/dev/null; then
        die "the wheelhouse holds CUDA packages ($(cd "$tmp" && ls nvidia_* triton-* 2>/dev/null |
            tr '\n' ' ')); pip did not pick the CPU torch wheel: add its find-links and rerun"
    fi
    compgen -G "$tmp/torch-*+cpu-*.whl" >/dev/null ||
        die "no torch +cpu wheel in the wheelhouse: $(cd "$tmp" && ls torch-* 2>/dev/null)"
    rm -rf "$WHEELHOUSE"
    mv "$tmp" "$WHEELHOUSE"
    touch "$WHEELHOUSE_STAMP"
    info "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
}

build_image() {
    local stage=$1 tag=ncf-$1:latest
    step "Image $tag (from $BASE_IMAGE)"
    DOCKER_BUILDKIT=1 "$DOCKER" build --quiet \
        --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -f "$REPO_ROOT/$stage/Dockerfile" -t "$tag" "$REPO_ROOT" >/dev/null ||
        die "docker build of $tag failed; rerun without --quiet to see why:
    DOCKER_BUILDKIT=1 $DOCKER build --build-arg BASE_IMAGE=$BASE_IMAGE -f $stage/Dockerfile -t $tag ."
    info "$("$DOCKER" image inspect -f '{{.Id}}  {{.Size}} bytes' "$tag")"
}

main() {
    local started=$SECONDS
    require_root
    install_packages
    start_dockerd
    make_base_image
    build_wheelhouse
    build_image preprocessing
    build_image training
    step "Done in $((SECONDS - started)) s"
}

main "$@"
