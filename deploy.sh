#!/usr/bin/env bash
# Deploy cvat-ext's Nuclio functions into CVAT's Nuclio project "cvat", or start the QA sidecar.
#
#   ./deploy.sh [--gpu] [--functions-dir DIR] [--network NET] [--dry-run] [NAME ...]
#   ./deploy.sh sidecar [docker compose up args...]
#   ./deploy.sh --help
#
# Functions: every serverless/**/function.yaml (with --gpu: function-gpu.yaml where the folder has
# one, else function.yaml: CPU-only models such as OpenCV need no GPU). NAMEs restrict the set to
# those metadata.name values. Every selected file must pass `cvat-ext functions lint` first: a
# function.yaml that CVAT would mis-parse is never deployed. Each function folder is staged in a
# temporary copy together with a wheel of cvat-ext (the shared runtime its main.py imports), then
# deployed like CVAT's own serverless/deploy_cpu.sh: `nuctl deploy --project-name cvat
# --platform local` on the CVAT docker network, with CVAT's kvrocks as CVAT_FUNCTIONS_REDIS_*.
#
# Environment: NUCTL (default nuctl), CVAT_EXT (default: cvat-ext on PATH, else python3 -m cvat_ext),
# PYTHON (default python3, builds the wheel).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NUCTL="${NUCTL:-nuctl}"
PYTHON="${PYTHON:-python3}"
if [ -n "${CVAT_EXT:-}" ]; then
    read -r -a CVAT_EXT_CMD <<<"$CVAT_EXT"
elif command -v cvat-ext >/dev/null 2>&1; then
    CVAT_EXT_CMD=(cvat-ext)
else
    CVAT_EXT_CMD=("$PYTHON" -m cvat_ext)
fi

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

GPU=0
DRY_RUN=0
FUNCTIONS_DIR="$ROOT/serverless"
NETWORK="cvat_cvat"
NAMES=()

if [ "${1:-}" = "sidecar" ]; then
    shift
    for arg in "$@"; do
        if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then usage; exit 0; fi
    done
    exec docker compose -f "$ROOT/docker/docker-compose.yml" up -d "$@"
fi

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --gpu) GPU=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --functions-dir) FUNCTIONS_DIR="$(cd "${2:?--functions-dir needs a folder}" && pwd)"; shift ;;
        --network) NETWORK="${2:?--network needs a name}"; shift ;;
        -*) echo "deploy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) NAMES+=("$1") ;;
    esac
    shift
done

function_name() {
    "$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' "$1"
}

# --- select the yaml file of every function ------------------------------------------------------
shopt -s globstar nullglob
SELECTED=()
FOUND_NAMES=()
for cpu_yaml in "$FUNCTIONS_DIR"/**/function.yaml; do
    name="$(function_name "$cpu_yaml")"
    if [ "${#NAMES[@]}" -gt 0 ] && [[ ! " ${NAMES[*]} " =~ [[:space:]]${name}[[:space:]] ]]; then
        continue
    fi
    yaml_file="$cpu_yaml"
    gpu_yaml="$(dirname "$cpu_yaml")/function-gpu.yaml"
    if [ "$GPU" = 1 ]; then
        if [ -f "$gpu_yaml" ]; then
            yaml_file="$gpu_yaml"
        else
            echo "deploy.sh: $name has no function-gpu.yaml, deploying its CPU function.yaml" >&2
        fi
    fi
    SELECTED+=("$yaml_file")
    FOUND_NAMES+=("$name")
done
for wanted in "${NAMES[@]}"; do
    if [[ ! " ${FOUND_NAMES[*]} " =~ [[:space:]]${wanted}[[:space:]] ]]; then
        echo "deploy.sh: no function named $wanted under $FUNCTIONS_DIR" >&2
        exit 2
    fi
done
if [ "${#SELECTED[@]}" -eq 0 ]; then
    echo "deploy.sh: no function.yaml under $FUNCTIONS_DIR" >&2
    exit 2
fi

# --- refuse what CVAT would mis-parse --------------------------------------------------------------
if ! "${CVAT_EXT_CMD[@]}" functions lint "${SELECTED[@]}"; then
    echo "deploy.sh: refusing to deploy: fix the lint errors above" >&2
    exit 1
fi

# --- stage each function with the cvat-ext wheel, then deploy ------------------------------------
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
run "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$STAGE/wheels" "$ROOT"
run "$NUCTL" create project cvat --platform local || true   # exists after the first run
for yaml_file in "${SELECTED[@]}"; do
    src="$(dirname "$yaml_file")"
    name="$(function_name "$yaml_file")"
    dst="$STAGE/functions/$name"
    mkdir -p "$dst"
    cp -R "$src/." "$dst/"
    if [ "$DRY_RUN" = 0 ]; then cp -R "$STAGE/wheels" "$dst/wheels"; fi
    echo "deploy.sh: deploying $name from $yaml_file"
    run "$NUCTL" deploy --project-name cvat --path "$dst" --file "$dst/$(basename "$yaml_file")" \
        --platform local \
        --env CVAT_FUNCTIONS_REDIS_HOST=cvat_redis_ondisk \
        --env CVAT_FUNCTIONS_REDIS_PORT=6666 \
        --platform-config "{\"attributes\": {\"network\": \"$NETWORK\"}}"
done
run "$NUCTL" get function --platform local
