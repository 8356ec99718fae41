#!/bin/sh
# The compose JupyterLab service's command. The image installs the project editable at the path it
# was built from (NCF_PROJECT_DIR); compose mounts the repository at ${PWD} and starts here. If the
# repository has moved since the build, every notebook would fail on its first import: say so now.
# JUPYTER_PORT: the image's ENV (8888), or compose's.
if ! problem=$(python -P -c "import inference, orchestration, preprocessing, training" 2>&1); then
    echo "$problem" | tail -n 1 >&2
    echo "error: this ncf-jupyterlab image has the course installed from $NCF_PROJECT_DIR, but the" \
        "repository is mounted at $(pwd). Rebuild the image from the repository root:" \
        "docker compose build jupyterlab" >&2
    exit 1
fi
exec jupyter lab --ip=127.0.0.1 --port="$JUPYTER_PORT" --no-browser --allow-root "$@"
