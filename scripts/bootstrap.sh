#!/usr/bin/env bash
# Offline image bootstrap for the course's SageMaker local-mode containers.
#
# Run as root on Debian bookworm from anywhere: installs the Docker engine, starts dockerd, makes
# the offline base image ncf-base:bookworm with debootstrap, then runs scripts/build_images.sh
# (host wheelhouse + every image, `pip install --no-index` inside the builds).
# Idempotent: every step is skipped when its result is already there. Not needed on a machine
# with internet and a Docker engine: `make images` builds from the public base images there.
#
# Environment overrides: BASE_IMAGE (default ncf-base:bookworm; set python:3.11-slim-bookworm
# where a registry is reachable), DEBIAN_MIRROR, PYTHON (the interpreter for `pip wheel`; default
# Debian's /usr/bin/python3, the same 3.11.2 as the base image, so every wheel suits the images),
# BUILD_CACHE_KEEP (how much Docker build cache to keep, default 10GB).
set -euo pipefail

DOCKER=/usr/bin/docker # /usr/local/bin/docker (first on PATH) has no buildx/compose
BASE_IMAGE=${BASE_IMAGE:-ncf-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERD_LOG=/var/log/dockerd.log
# BuildKit keeps every earlier build's layers unless told otherwise: on a CI machine that building
# clone after clone filled the disk (docs/operations.md). Kept to the most recent ones.
BUILD_CACHE_KEEP=${BUILD_CACHE_KEEP:-10GB}

# shellcheck source=scripts/common.sh
source "$REPO_ROOT/scripts/common.sh"

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (apt-get, dockerd and debootstrap need it): sudo $0"
}

install_packages() {
    step "System packages: docker.io, docker-compose, debootstrap, python3-pip"
    local missing=()
    [[ -x $DOCKER ]] || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
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

trim_build_cache() {
    step "Build cache (kept to $BUILD_CACHE_KEEP)"
    info "$("$DOCKER" builder prune --force --keep-storage "$BUILD_CACHE_KEEP" | tail -n 1)"
    local root
    root=$("$DOCKER" info --format '{{.DockerRootDir}}')
    info "$(df --output=avail -h "$root" | tail -n 1 | tr -d ' ') free on $root"
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

main() {
    local started=$SECONDS
    require_root
    install_packages
    start_dockerd
    trim_build_cache
    make_base_image
    # The wheelhouse must suit the image's Python: Debian's own python3 is the base image's.
    DOCKER=$DOCKER BASE_IMAGE=$BASE_IMAGE PYTHON=${PYTHON:-/usr/bin/python3} \
        "$REPO_ROOT/scripts/build_images.sh"
    step "Bootstrap done in $((SECONDS - started)) s"
}

main "$@"
