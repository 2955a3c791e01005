#!/usr/bin/env bash
# Summarize a binarized split with a recipe from configs/generate/:
#
#   scripts/generate.sh CONFIG DATA_BIN CHECKPOINT RESULTS_DIR [extra fairseq-generate flags]
#   scripts/generate.sh configs/generate/paper.args data-bin/arxiv runs/arxiv-deep/checkpoint_best.pt results/arxiv-deep
#
# Runs fairseq-generate DATA_BIN --user-dir <this repo>/deep_pyramidion <recipe flags> --path
# CHECKPOINT --results-path RESULTS_DIR [--sentencepiece-model DATA_BIN/spm.model] <extra flags>
# (extra flags last, so they win; SPM_MODEL=path replaces DATA_BIN/spm.model). fairseq writes
# RESULTS_DIR/generate-SUBSET.txt. Then every document of the split must have a hypothesis: the
# H- lines are counted against DATA_BIN/SUBSET.ids (written by scripts/preprocess.py) and a
# shortfall is an error (exit 3). Score with:
#   python scripts/score.py --generate-output RESULTS_DIR/generate-test-A.txt --ref data/arxiv/test-A.tgt
# DRY_RUN=1 prints the command, one argument per line, instead of running it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"

if [ $# -lt 4 ]; then
  echo "usage: scripts/generate.sh CONFIG DATA_BIN CHECKPOINT RESULTS_DIR [extra fairseq-generate flags]" >&2
  exit 2
fi
config="$1" data="$2" ckpt="$3" results="$4"
shift 4
[ -d "$data" ] || { echo "error: DATA_BIN $data: no such folder" >&2; exit 2; }
if [ "${DRY_RUN:-0}" != "1" ] && [ ! -f "$ckpt" ]; then
  echo "error: CHECKPOINT $ckpt: no such file" >&2
  exit 2
fi
read_recipe "$config"
check_not_in_recipe "$config" --path --results-path --user-dir

spm=()
spm_model="${SPM_MODEL:-$data/spm.model}"
if [ -f "$spm_model" ]; then
  spm=(--sentencepiece-model "$spm_model")
elif [ -n "${SPM_MODEL:-}" ]; then
  echo "error: SPM_MODEL $SPM_MODEL: no such file" >&2
  exit 2
fi

# the split to count: the last --gen-subset among the recipe and the extra flags (default test)
subset=test
all=("${RECIPE[@]}" "$@")
for ((i = 0; i < ${#all[@]}; i++)); do
  case "${all[i]}" in
    --gen-subset) subset="${all[i + 1]:-test}" ;;
    --gen-subset=*) subset="${all[i]#--gen-subset=}" ;;
  esac
done

cmd=("$(fairseq_bin fairseq-generate)" "$data" --user-dir "$USER_DIR" "${RECIPE[@]}"
     --path "$ckpt" --results-path "$results" "${spm[@]}" "$@")
run_or_print "${cmd[@]}"
[ "${DRY_RUN:-0}" = "1" ] && exit 0

out="$results/generate-$subset.txt"
[ -f "$out" ] || { echo "error: fairseq-generate wrote no $out" >&2; exit 3; }
got=$(grep -c '^H-[0-9]' "$out" || true)
if [ -f "$data/$subset.ids" ]; then
  want=$(grep -c '' "$data/$subset.ids")
  if [ "$got" != "$want" ]; then
    echo "error: $out holds $got hypotheses for the $want documents of $subset ($data/$subset.ids):" \
         "some documents got no summary (too long for --max-source-positions without --truncate-source?" \
         "--skip-invalid-size-inputs-valid-test?)" >&2
    exit 3
  fi
  echo "generate: $got summaries for the $want documents of $subset in $out" >&2
else
  echo "generate: $got summaries in $out (no $data/$subset.ids to check the count against)" >&2
fi
