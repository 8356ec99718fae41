# Shared by scripts/bootstrap.sh and scripts/build_images.sh: how they report progress and fail.
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}
