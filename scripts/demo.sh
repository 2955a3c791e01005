#!/usr/bin/env bash
# `make demo`: train a small DeepPyramidion on ACLSum on the CPU and score it, in about 15-20 minutes
# on 2 cores. `make demo PRETRAINED=DIR` (DEMO_PRETRAINED=DIR here): fine-tune the pretrained BART
# in DIR (a fairseq or Hugging Face BART folder the user has; nothing is downloaded) instead.
#
#   prepare     ACLSum papers -> demo/data/aclsum/{train,dev-0,test-A}.{src,tgt,ids} (100/50/100),
#               the same text for both
#   convert     (pretrained only) pyramidion-convert DIR demo/bart/converted --max-source-positions
#               DEMO_SOURCE_POSITIONS (2048, see configs/train/bart_aclsum_cpu.args)
#   preprocess  from scratch: sentencepiece (4000 pieces) + fairseq-preprocess -> demo/data-bin/aclsum;
#               pretrained: the BART's byte-level BPE and dictionary (preprocess.py --pretrained)
#               -> demo/bart/data-bin
#   train       from scratch: configs/train/aclsum_cpu.args
#   (finetune)  pretrained: configs/train/bart_aclsum_cpu.args + the converted model's own flags
#               (converted/convert.json) + --finetune-from-model converted/model.pt
#               both stop after DEMO_TRAIN_MINUTES of training
#   generate    configs/generate/aclsum_cpu.args or bart_aclsum_cpu.args on test-A (both with
#               --no-repeat-ngram-size 3); every test paper must get a summary
#   score       ROUGE-1/2/L/Lsum of the model next to the Lead baseline (scripts/score.py), then
#               one generated summary beside its reference
#
# The console shows each step's header, its key lines (counts, training progress, the ROUGE table)
# and where its log is: the whole output of every step, warnings included (fairseq's, hydra's,
# torch's deprecation and user warnings), is appended to WORK/logs/STEP.log, where WORK is DEMO_DIR
# (from scratch) or DEMO_DIR/bart (pretrained). A failing step prints its error line (or the last
# lines of its log) and the log's path, and the demo exits with the step's status.
#
# Re-running reuses what is done: the prepared text (prepare.json), the conversion
# (converted/convert.json, if made from the same DIR at the same length), the binarized data
# (preprocess.json) and a finished training run (checkpoints/train.done; an interrupted one
# resumes from checkpoint_last.pt). Generation and scoring always run again. Everything goes under
# DEMO_DIR (default demo/, git-ignored); delete it (or DEMO_DIR/bart) to start over.
#
# Settings (environment variables), for tests and for machines with more time:
#   DEMO_DIR            output folder (default: demo)
#   DEMO_PRETRAINED     a fairseq or Hugging Face BART folder: fine-tune it (make demo PRETRAINED=DIR)
#   DEMO_SOURCE_POSITIONS  source tokens the converted BART reads (default 2048; see the recipe)
#   DEMO_RAW            a prepared text folder to use instead of preparing ACLSum
#   DEMO_BIN            a binarized folder (of DEMO_RAW) to use instead of preprocessing
#   DEMO_VOCAB          sentencepiece vocabulary size (default 4000; from scratch only)
#   DEMO_TRAIN_MINUTES  training time budget in minutes (default 11)
#   DEMO_MAX_UPDATE     stop after this many updates (default: the recipe's)
#   DEMO_TRAIN_ARGS     extra fairseq-train flags, split on spaces (e.g. "--encoder-layers 1")
#   DEMO_GEN_ARGS       extra fairseq-generate flags, split on spaces (e.g. "--beam 1")
#   DEMO_TRAIN_CONFIG / DEMO_GEN_CONFIG   other recipes
#   DEMO_BOOTSTRAP      bootstrap resamples of score.py (default 1000)
#   DEMO_SAMPLE         which test document to show (1-based, default 1)
#   DEMO_THREADS        torch threads (default: all cores, or 1 when the load is already at least
#                       the number of cores: on a busy CPU one thread per process runs faster)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"

if [ $# -ne 0 ]; then
  echo "usage: [DEMO_PRETRAINED=DIR] [DEMO_...=...] scripts/demo.sh   (settings: the comment at its top)" >&2
  exit 2
fi
# the pretrained folder, checked and made absolute before the cd (a path relative to the caller)
pretrained=""
if [ -n "${DEMO_PRETRAINED:-}" ]; then
  if [ ! -e "$DEMO_PRETRAINED" ]; then
    echo "error: PRETRAINED=$DEMO_PRETRAINED: no such folder (expected a fairseq or Hugging Face BART folder)" >&2
    exit 2
  fi
  if [ ! -d "$DEMO_PRETRAINED" ]; then
    echo "error: PRETRAINED=$DEMO_PRETRAINED: not a folder (expected a fairseq or Hugging Face BART folder)" >&2
    exit 2
  fi
  pretrained="$(cd "$DEMO_PRETRAINED" && pwd)"
  # the BPE files the fine-tuning data is encoded with, checked before any step runs (the rest of
  # the folder is read by pyramidion-convert, which names what is wrong)
  bpe_missing=""
  if [ -f "$pretrained/convert.json" ]; then
    echo "error: PRETRAINED=$DEMO_PRETRAINED: holds convert.json, a pyramidion pyramidion-convert already wrote, not a BART; give the original BART folder" >&2
    exit 2
  elif [ -f "$pretrained/model.pt" ] && [ -f "$pretrained/dict.txt" ]; then
    for f in encoder.json vocab.bpe; do [ -f "$pretrained/$f" ] || bpe_missing="$bpe_missing $f"; done
    [ -z "$bpe_missing" ] || {
      echo "error: PRETRAINED=$DEMO_PRETRAINED: a fairseq BART without${bpe_missing} (fairseq's BART archives do not ship GPT-2's BPE files): copy GPT-2's encoder.json and vocab.bpe into it" >&2
      exit 2; }
  elif [ -f "$pretrained/config.json" ] && grep -qE '"model_type": *"bart"' "$pretrained/config.json"; then
    for f in vocab.json merges.txt; do [ -f "$pretrained/$f" ] || bpe_missing="$bpe_missing $f"; done
    [ -z "$bpe_missing" ] || {
      echo "error: PRETRAINED=$DEMO_PRETRAINED: a Hugging Face model folder without${bpe_missing} (its tokenizer files): download them with the model" >&2
      exit 2; }
  fi
fi
cd "$REPO_ROOT"

DEMO_DIR="${DEMO_DIR:-demo}"
DEMO_VOCAB="${DEMO_VOCAB:-4000}"
DEMO_SOURCE_POSITIONS="${DEMO_SOURCE_POSITIONS:-2048}"
DEMO_TRAIN_MINUTES="${DEMO_TRAIN_MINUTES:-11}"
DEMO_MAX_UPDATE="${DEMO_MAX_UPDATE:-}"
DEMO_BOOTSTRAP="${DEMO_BOOTSTRAP:-1000}"
DEMO_SAMPLE="${DEMO_SAMPLE:-1}"
read -r -a train_extra <<< "${DEMO_TRAIN_ARGS:-}"
read -r -a gen_extra <<< "${DEMO_GEN_ARGS:-}"

PY="$(venv_python)"
cores="$(nproc 2>/dev/null || echo 1)"
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
if [ -z "${DEMO_THREADS:-}" ]; then
  load1="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
  if awk -v l="$load1" -v c="$cores" 'BEGIN { exit !(l >= c) }'; then DEMO_THREADS=1; else DEMO_THREADS="$cores"; fi
fi
case "$DEMO_TRAIN_MINUTES" in ''|*[!0-9.]*) echo "error: DEMO_TRAIN_MINUTES must be a number of minutes, got '$DEMO_TRAIN_MINUTES'" >&2; exit 2 ;; esac
case "$DEMO_SAMPLE" in ''|*[!0-9]*|0) echo "error: DEMO_SAMPLE must be a line number >= 1, got '$DEMO_SAMPLE'" >&2; exit 2 ;; esac
case "$DEMO_SOURCE_POSITIONS" in ''|*[!0-9]*|0) echo "error: DEMO_SOURCE_POSITIONS must be a number of tokens >= 1, got '$DEMO_SOURCE_POSITIONS'" >&2; exit 2 ;; esac
export OMP_NUM_THREADS="$DEMO_THREADS" MKL_NUM_THREADS="$DEMO_THREADS" PYTHONUNBUFFERED=1

raw="${DEMO_RAW:-$DEMO_DIR/data/aclsum}"
if [ -n "$pretrained" ]; then
  work="$DEMO_DIR/bart"                 # its own folder: the from-scratch outputs stay as they are
  bin="${DEMO_BIN:-$work/data-bin}"
  converted="$work/converted"
  train_config="${DEMO_TRAIN_CONFIG:-configs/train/bart_aclsum_cpu.args}"
  gen_config="${DEMO_GEN_CONFIG:-configs/generate/bart_aclsum_cpu.args}"
  system=pyramidion-bart
  train_step=finetune
else
  work="$DEMO_DIR"
  bin="${DEMO_BIN:-$DEMO_DIR/data-bin/aclsum}"
  train_config="${DEMO_TRAIN_CONFIG:-configs/train/aclsum_cpu.args}"
  gen_config="${DEMO_GEN_CONFIG:-configs/generate/aclsum_cpu.args}"
  system=pyramidion
  train_step=train
fi
ckpt_dir="$work/checkpoints"
gen_dir="$work/generate"
logs="$work/logs"
mkdir -p "$logs"
timings="$work/timings.txt"
: > "$timings"

# ------------------------------------------------------------------ steps, logs and the console
start_all=$SECONDS
step_start=$SECONDS
step() {  # step NAME: header with the time, the machine's load and the step's log
  step_start=$SECONDS
  step_name="$1"
  step_log="$logs/$1.log"
  printf '\n##### demo.sh %s  %s\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$step_log"
  printf '\n=== %s  (load average %s, %s thread(s); log %s) ===\n' "$1" "$(load)" "$DEMO_THREADS" "$step_log"
}
step_done() {
  local took=$((SECONDS - step_start)) warned
  warned=$(grep -cE '[A-Za-z]+Warning\b|\| WARNING \||^WARNING' "$step_log" || true)
  printf '%-11s %5ds  load %s\n' "$step_name" "$took" "$(load)" >> "$timings"
  printf -- '--- %s: %ds%s\n' "$step_name" "$took" \
    "$( [ "$warned" -eq 0 ] || echo " ($warned warning lines in $step_log)")"
}
say() {  # the console and the step's log
  printf '%s\n' "$*"
  printf '%s\n' "$*" >> "$step_log"
}
die() {  # die STATUS MESSAGE: one error line, recorded in the step's log too
  printf 'error: %s\n' "$2" >&2
  printf 'error: %s\n' "$2" >> "$step_log"
  exit "$1"
}
step_failed() {  # step_failed STATUS: the error on the console, the rest in the log; exit STATUS
  local last
  last="$(tail -n 1 "$step_log")"
  if [[ "$last" == error:* ]]; then   # the project's command lines end an expected failure so
    printf '%s\n' "$last" >&2
  else
    printf 'the last lines of %s:\n' "$step_log" >&2
    tail -n 25 "$step_log" | sed 's/^/  /' >&2
  fi
  printf 'demo: %s failed (exit %s); its whole output is in %s\n' "$step_name" "$1" "$step_log" >&2
  exit "$1"
}
# the console's copy of a kept line, without logging's prefixes: fairseq-train's "DATE TIME |
# INFO | ", python logging's "INFO:name:" and the project's "INFO name: "
strip_prefixes() {
  sed -u -E -e 's/^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} \| INFO \| //' \
    -e 's/^INFO[: ][A-Za-z0-9_.-]+: ?//'
}
keep_lines() {  # keep_lines REGEX: the lines of stdin that match it (none when it is empty)
  if [ -z "$1" ]; then cat > /dev/null; else grep --line-buffered -E -e "$1" | strip_prefixes; fi
}
run_logged() {  # run_logged KEEP CMD...: CMD's stdout and stderr go whole to the step's log, the
  local keep="$1" rc   # console gets the lines matching KEEP; a failure ends the demo (step_failed)
  shift
  printf '+ %s\n' "$*" >> "$step_log"
  set +e
  "$@" 2>&1 | tee -a "$step_log" | keep_lines "$keep"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || step_failed "$rc"
}
run_shown() {  # run_shown OUT CMD...: CMD's stdout to OUT, the console and the log; stderr to the log
  local out="$1" rc
  shift
  printf '+ %s\n' "$*" >> "$step_log"
  set +e
  "$@" 2>> "$step_log" | tee "$out" | tee -a "$step_log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || step_failed "$rc"
}
# what the console keeps of each tool
KEEP_WROTE='^wrote '
KEEP_CONVERT='fairseq_plugin\.convert: [A-Za-z]+ BART: |pyramidion-convert: wrote '
KEEP_TRAIN="\| (train_inner|train) \||valid on '|Stopping training|done training|num\. shared model params|loading pretrained model|Loaded checkpoint"
KEEP_GENERATE='^generate: |Translated [0-9]+ sentences'

# ------------------------------------------------------------------ the steps
prepare_step() {
  step prepare
  if [ -f "$raw/prepare.json" ] || { [ -n "${DEMO_RAW:-}" ] && [ -f "$raw/train.src" ]; }; then
    say "reusing the prepared text in $raw"
  else
    run_logged "$KEEP_WROTE" "$PY" scripts/prepare_aclsum.py --out "$raw"
  fi
  local split ext
  for split in train dev-0 test-A; do
    for ext in src tgt; do
      [ -f "$raw/$split.$ext" ] || die 1 "$raw/$split.$ext missing; delete $raw and re-run"
    done
  done
  n_test=$(grep -c '' "$raw/test-A.src")
  say "$(grep -c '' "$raw/train.src") training papers, $(grep -c '' "$raw/dev-0.src") dev, $n_test test"
  step_done
}

convert_step() {  # the pretrained BART -> a pyramidion reading DEMO_SOURCE_POSITIONS tokens
  step convert
  if [ -f "$converted/convert.json" ]; then
    # made from this DIR at this length, or the later steps' outputs belong to another model
    local made
    made=$("$PY" - "$converted/convert.json" "$pretrained" "$DEMO_SOURCE_POSITIONS" 2>> "$step_log" <<'EOF'
import json, os, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
if os.path.realpath(report["source"]) != os.path.realpath(sys.argv[2]) \
        or report["max_source_positions"] != int(sys.argv[3]):
    print(f"from {report['source']} at {report['max_source_positions']} positions")
EOF
    ) || die 1 "$converted/convert.json: cannot read it; delete $converted to convert again"
    [ -z "$made" ] || die 2 "$converted was converted $made, not from PRETRAINED=$pretrained at $DEMO_SOURCE_POSITIONS; delete $work to start over with this model (or set another DEMO_DIR)"
    say "reusing the converted model in $converted"
  else
    run_logged "$KEEP_CONVERT" "$(fairseq_bin pyramidion-convert)" "$pretrained" "$converted" \
      --max-source-positions "$DEMO_SOURCE_POSITIONS"
  fi
  converted_model_flags "$converted/convert.json"
  model_flags=("${MODEL_FLAGS[@]}")
  step_done
}

preprocess_step() {
  step preprocess
  if [ -f "$bin/preprocess.json" ] || { [ -n "${DEMO_BIN:-}" ] && [ -f "$bin/dict.src.txt" ]; }; then
    say "reusing the binarized data in $bin"
  else
    local tokenizer=(--vocab-size "$DEMO_VOCAB") overwrite=()
    [ -z "$pretrained" ] || tokenizer=(--pretrained "$converted")
    [ -d "$bin" ] && overwrite=(--overwrite)   # a run cut short left partial files
    run_logged "$KEEP_WROTE" "$PY" scripts/preprocess.py --data "$raw" --out "$bin" \
      "${tokenizer[@]}" --workers "$cores" "${overwrite[@]}"
  fi
  step_done
}

train_step() {  # train from scratch, or fine-tune the converted model
  step "$train_step"
  if [ -f "$ckpt_dir/train.done" ] && [ -f "$ckpt_dir/checkpoint_last.pt" ]; then
    say "reusing the trained model in $ckpt_dir ($(cat "$ckpt_dir/train.done")); rm $ckpt_dir/train.done to train again"
  else
    local hours limits model=()
    hours=$(awk -v m="$DEMO_TRAIN_MINUTES" 'BEGIN { printf "%.4f", m / 60 }')
    limits=(--stop-time-hours "$hours")
    [ -n "$DEMO_MAX_UPDATE" ] && limits+=(--max-update "$DEMO_MAX_UPDATE")
    [ -z "$pretrained" ] || model=(--finetune-from-model "$converted/model.pt" "${model_flags[@]}")
    say "${pretrained:+fine-tuning $converted/model.pt: }recipe $train_config, at most $DEMO_TRAIN_MINUTES minutes${DEMO_MAX_UPDATE:+ or $DEMO_MAX_UPDATE updates}"
    run_logged "$KEEP_TRAIN" bash scripts/train.sh "$train_config" "$bin" "$ckpt_dir" \
      "${model[@]}" "${limits[@]}" "${train_extra[@]}"
    [ -f "$ckpt_dir/checkpoint_last.pt" ] || die 1 "training wrote no $ckpt_dir/checkpoint_last.pt (log: $step_log)"
    local updates
    updates=$(grep -oE 'num_updates[ =]+[0-9]+' "$step_log" | tail -1 | grep -oE '[0-9]+$' || echo "?")
    echo "$updates updates, $((SECONDS - step_start))s, $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$ckpt_dir/train.done"
  fi
  step_done
}

# checkpoint_last: with 100 papers the dev loss is noisy and validation is sparse (or off)
generate_step() {
  step generate
  rm -rf "$gen_dir"
  local positions=()   # the converted length (convert_step checked convert.json's)
  [ -z "$pretrained" ] || positions=(--max-source-positions "$DEMO_SOURCE_POSITIONS")
  run_logged "$KEEP_GENERATE" bash scripts/generate.sh "$gen_config" "$bin" \
    "$ckpt_dir/checkpoint_last.pt" "$gen_dir" "${positions[@]}" "${gen_extra[@]}"
  out="$gen_dir/generate-test-A.txt"
  # generate.sh checked the output against test-A.ids; this is the same check (any --nbest) against
  # the count of the text split, which a DEMO_BIN without .ids files still has
  run_logged "" "$PY" -m deep_pyramidion.eval.generate_output --check "$out" --expected "$n_test"
  say "$n_test summaries for the $n_test test-A documents"
  step_done
}

score_step() {
  step score
  run_shown "$work/rouge.txt" "$PY" scripts/score.py --generate-output "$out" --ref "$raw/test-A.tgt" \
    --lead-source "$raw/test-A.src" --name "$system" --bootstrap "$DEMO_BOOTSTRAP" \
    --json "$work/rouge.json"

  # one summary beside its reference (sentences on their own lines, <q> is the sentence marker)
  local i=$((DEMO_SAMPLE - 1)) hyp ref doc_id
  [ "$DEMO_SAMPLE" -le "$n_test" ] || die 2 "DEMO_SAMPLE=$DEMO_SAMPLE but test-A has $n_test documents"
  hyp=$(grep -P "^D-$i\t" "$out" | head -1 | cut -f3- || true)
  ref=$(sed -n "${DEMO_SAMPLE}p" "$raw/test-A.tgt")
  doc_id=$(sed -n "${DEMO_SAMPLE}p" "$raw/test-A.ids" 2>/dev/null || true)
  [ -n "$hyp" ] || hyp="(empty summary)"
  printf '%s\n' "$hyp" | sed 's/ *<q> */\n/g' | fold -s -w 70 > "$work/sample.hyp"
  printf '%s\n' "$ref" | sed 's/ *<q> */\n/g' | fold -s -w 70 > "$work/sample.ref"
  printf '\ntest-A document %s%s: generated summary (left) and reference abstract (right)\n' \
    "$DEMO_SAMPLE" "${doc_id:+ ($doc_id)}"
  printf '%s\n' "GENERATED" "---------" | cat - "$work/sample.hyp" > "$work/sample.left"
  printf '%s\n' "REFERENCE" "---------" | cat - "$work/sample.ref" > "$work/sample.right"
  pr -m -t -w 148 "$work/sample.left" "$work/sample.right"
  step_done
}

# ------------------------------------------------------------------ the demo
echo "demo: $cores core(s), load average $(load) at start; outputs under $work/${pretrained:+ (fine-tuning $pretrained)}"
prepare_step
[ -z "$pretrained" ] || convert_step
preprocess_step
train_step
generate_step
score_step

total=$((SECONDS - start_all))
printf '%-11s %5ds  load %s\n' total "$total" "$(load)" >> "$timings"
printf '\n=== wall time per step (%s) ===\n' "$timings"
cat "$timings"
echo "ROUGE: $work/rouge.txt ($work/rouge.json); summaries: $out; logs: $logs/"
