#!/usr/bin/env bash
# A pretrained BART made long, fine-tuned, evaluated: convert -> preprocess -> fine-tune ->
# generate -> score, with the recipes of configs/ (README: "Starting from a pretrained BART").
#
#   scripts/bart_recipe.sh SRC_BART TEXT_DIR WORK_DIR [base|large]
#   scripts/bart_recipe.sh bart.base/ data/arxiv runs/bart-base-arxiv base
#
#   SRC_BART  a fairseq BART (model.pt + dict.txt, plus encoder.json + vocab.bpe) or a Hugging Face
#             BART folder (config.json, model.safetensors, vocab.json + merges.txt); the user
#             downloads it, this script never does
#   TEXT_DIR  text splits as the prepare scripts write them ({train,dev-0,test-A}.{src,tgt,ids})
#   WORK_DIR  everything written: converted/, bin/, checkpoints/, results/, rouge.json
#   base|large  which recipe of configs/train/bart_*.args (default: base)
#
#   1. convert     pyramidion-convert SRC_BART WORK_DIR/converted --max-source-positions 8192
#   2. preprocess  scripts/preprocess.py --data TEXT_DIR --out WORK_DIR/bin --pretrained converted
#   3. fine-tune   scripts/train.sh configs/train/bart_SIZE.args ... --finetune-from-model
#                  WORK_DIR/converted/model.pt
#   4. generate    scripts/generate.sh configs/generate/bart.args on test-A (every document checked)
#   5. score       scripts/score.py ROUGE-1/2/L/Lsum against TEXT_DIR/test-A.tgt, with a Lead row
#
# A step that finished is not run again (converted/convert.json, bin/preprocess.json,
# checkpoints/train.done); delete its folder to redo it. Settings (environment variables):
#   MAX_SOURCE_POSITIONS  encoder length of the conversion (default 8192)
#   CONVERT_ARGS / TRAIN_ARGS / GEN_ARGS  extra flags of each step, split on spaces; fine-tuning
#                         also gets the converted model's own flags (sizes, positions, schedule)
#                         from converted/convert.json, so any BART-shaped source fits
#   DRY_RUN=1             print the commands instead of running them
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: scripts/bart_recipe.sh SRC_BART TEXT_DIR WORK_DIR [base|large]" >&2
  exit 2
fi
src="$1" text="$2" work="$3" size="${4:-base}"
case "$size" in base|large) ;; *) echo "error: size must be base or large, got '$size'" >&2; exit 2 ;; esac
[ -d "$src" ] || { echo "error: SRC_BART $src: no such folder" >&2; exit 2; }
[ -d "$text" ] || { echo "error: TEXT_DIR $text: no such folder" >&2; exit 2; }
positions="${MAX_SOURCE_POSITIONS:-8192}"
case "$positions" in ''|*[!0-9]*) echo "error: MAX_SOURCE_POSITIONS must be an integer, got '$positions'" >&2; exit 2 ;; esac
read -r -a convert_extra <<< "${CONVERT_ARGS:-}"
read -r -a train_extra <<< "${TRAIN_ARGS:-}"
read -r -a gen_extra <<< "${GEN_ARGS:-}"
PY="$(venv_python)"

converted="$work/converted" bin="$work/bin" ckpt="$work/checkpoints" results="$work/results"
[ "${DRY_RUN:-0}" = "1" ] || mkdir -p "$work"

if [ -f "$converted/convert.json" ]; then
  echo "convert: $converted/convert.json exists, reusing it" >&2
else
  run_or_print "$(fairseq_bin pyramidion-convert)" "$src" "$converted" \
    --max-source-positions "$positions" --arch "pyramidion_bart_$size" "${convert_extra[@]}"
fi

if [ -f "$bin/preprocess.json" ]; then
  echo "preprocess: $bin/preprocess.json exists, reusing it" >&2
else
  run_or_print "$PY" "$REPO_ROOT/scripts/preprocess.py" --data "$text" --out "$bin" \
    --pretrained "$converted"
fi

# the converted model's own flags (its sizes, positions, schedule: convert.json), so that the model
# fairseq-train builds is the converted one, whatever the source's size
model_flags=()
if [ -f "$converted/convert.json" ]; then
  converted_model_flags "$converted/convert.json"
  model_flags=("${MODEL_FLAGS[@]}")
fi
if [ -f "$ckpt/train.done" ]; then
  echo "fine-tune: $ckpt/train.done exists, reusing the checkpoints" >&2
else
  run_or_print bash "$REPO_ROOT/scripts/train.sh" "$REPO_ROOT/configs/train/bart_$size.args" "$bin" \
    "$ckpt" --finetune-from-model "$converted/model.pt" "${model_flags[@]}" "${train_extra[@]}"
  [ "${DRY_RUN:-0}" = "1" ] || touch "$ckpt/train.done"
fi

best="$ckpt/checkpoint_best.pt"
[ "${DRY_RUN:-0}" = "1" ] || [ -f "$best" ] || best="$ckpt/checkpoint_last.pt"
run_or_print bash "$REPO_ROOT/scripts/generate.sh" "$REPO_ROOT/configs/generate/bart.args" "$bin" \
  "$best" "$results" --max-source-positions "$positions" "${gen_extra[@]}"

run_or_print "$PY" "$REPO_ROOT/scripts/score.py" --generate-output "$results/generate-test-A.txt" \
  --ref "$text/test-A.tgt" --lead-source "$text/test-A.src" --json "$work/rouge.json"
