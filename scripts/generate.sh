#!/usr/bin/env bash
# Summarize a binarized split with a recipe from configs/generate/:
#
#   scripts/generate.sh CONFIG DATA_BIN CHECKPOINT RESULTS_DIR [extra fairseq-generate flags]
#   scripts/generate.sh configs/generate/paper.args data-bin/arxiv runs/arxiv-deep/checkpoint_best.pt results/arxiv-deep
#
# Runs fairseq-generate DATA_BIN --user-dir <this repo>/deep_pyramidion <recipe flags> --path
# CHECKPOINT --results-path RESULTS_DIR [--sentencepiece-model DATA_BIN/spm.model, or with a
# pretrained BART's data (DATA_BIN/encoder.json + vocab.bpe) --bpe gpt2 and those files] <extra flags>
# (extra flags last, so they win; SPM_MODEL=path replaces DATA_BIN/spm.model). fairseq writes
# RESULTS_DIR/generate-SUBSET.txt. Then the output must be complete: one whole run (not cut off,
# not two runs appended, every H-/D-/P- line whole, fairseq's closing line there) holding every
# document of DATA_BIN/SUBSET.ids (written by scripts/preprocess.py) exactly once, whatever
# --nbest is; `python -m deep_pyramidion.eval.generate_output --check` decides, the same check
# score.py applies. Anything else is an error naming what is missing or where the file is damaged
# (exit 3). Score with:
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
elif [ -f "$data/encoder.json" ] && [ -f "$data/vocab.bpe" ] && [ -z "${SPM_MODEL:-}" ]; then
  # binarized with a pretrained BART's byte-level BPE (preprocess.py --pretrained)
  spm=(--bpe gpt2 --gpt2-encoder-json "$data/encoder.json" --gpt2-vocab-bpe "$data/vocab.bpe")
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
py="$(venv_python)"
check=("$py" -m deep_pyramidion.eval.generate_output --check "$out")
if [ -f "$data/$subset.ids" ]; then
  want=$(grep -c '' "$data/$subset.ids" || true)
  check+=(--expected "$want" --ids "$data/$subset.ids")
fi
# the checker prints its one-line error itself
if ! report=$(PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" "${check[@]}"); then
  exit 3
fi
if [ -n "${want:-}" ]; then
  echo "generate: $report (the $want documents of $subset)" >&2
else
  echo "generate: $report (no $data/$subset.ids to check the count against)" >&2
fi
