#!/usr/bin/env bash
# Train with a recipe from configs/train/:
#
#   scripts/train.sh CONFIG DATA_BIN SAVE_DIR [extra fairseq-train flags]
#   scripts/train.sh configs/train/deep_pyramidion.args data-bin/arxiv runs/arxiv-deep
#   scripts/train.sh configs/train/aclsum_cpu.args data-bin/aclsum runs/aclsum --max-update 50
#
# Runs fairseq-train DATA_BIN --user-dir <this repo>/deep_pyramidion <recipe flags> --save-dir
# SAVE_DIR <extra flags>; extra flags come last, so they override the recipe's. Recipe format:
# configs/README.md. DRY_RUN=1 prints the command, one argument per line, instead of running it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"

if [ $# -lt 3 ]; then
  echo "usage: scripts/train.sh CONFIG DATA_BIN SAVE_DIR [extra fairseq-train flags]" >&2
  exit 2
fi
config="$1" data="$2" save_dir="$3"
shift 3
[ -d "$data" ] || { echo "error: DATA_BIN $data: no such folder" >&2; exit 2; }
read_recipe "$config"          # -> RECIPE array; exits with file:line on a bad line
check_not_in_recipe "$config" --save-dir --user-dir

cmd=("$(fairseq_bin fairseq-train)" "$data" --user-dir "$USER_DIR" "${RECIPE[@]}" --save-dir "$save_dir" "$@")
run_or_print "${cmd[@]}"
