#!/usr/bin/env bash
# `make demo`: train a small DeepPyramidion on ACLSum on the CPU and score it, in about 15-20 minutes
# on 2 cores.
#
#   1. prepare   ACLSum papers -> demo/data/aclsum/{train,dev-0,test-A}.{src,tgt,ids}  (100/50/100)
#   2. preprocess sentencepiece (4000 pieces) + fairseq-preprocess -> demo/data-bin/aclsum
#   3. train     configs/train/aclsum_cpu.args; stops after DEMO_TRAIN_MINUTES of training
#   4. generate  configs/generate/aclsum_cpu.args on test-A; every test paper must get a summary
#   5. score     ROUGE-1/2/L/Lsum of the model next to the Lead baseline (scripts/score.py), then
#                one generated summary beside its reference
#
# Re-running reuses what is done: the prepared text (prepare.json), the binarized data
# (preprocess.json) and a finished training run (checkpoints/train.done; an interrupted one
# resumes from checkpoint_last.pt). Generation and scoring always run again. Everything goes under
# DEMO_DIR (default demo/, git-ignored); delete it to start over.
#
# Settings (environment variables), for tests and for machines with more time:
#   DEMO_DIR            output folder (default: demo)
#   DEMO_RAW            a prepared text folder to use instead of preparing ACLSum
#   DEMO_BIN            a binarized folder (of DEMO_RAW) to use instead of preprocessing
#   DEMO_VOCAB          sentencepiece vocabulary size (default 4000)
#   DEMO_TRAIN_MINUTES  training time budget in minutes (default 11)
#   DEMO_MAX_UPDATE     stop after this many updates (default: the recipe's 1000)
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
cd "$REPO_ROOT"

DEMO_DIR="${DEMO_DIR:-demo}"
DEMO_VOCAB="${DEMO_VOCAB:-4000}"
DEMO_TRAIN_MINUTES="${DEMO_TRAIN_MINUTES:-11}"
DEMO_MAX_UPDATE="${DEMO_MAX_UPDATE:-}"
DEMO_TRAIN_CONFIG="${DEMO_TRAIN_CONFIG:-configs/train/aclsum_cpu.args}"
DEMO_GEN_CONFIG="${DEMO_GEN_CONFIG:-configs/generate/aclsum_cpu.args}"
DEMO_BOOTSTRAP="${DEMO_BOOTSTRAP:-1000}"
DEMO_SAMPLE="${DEMO_SAMPLE:-1}"
read -r -a train_extra <<< "${DEMO_TRAIN_ARGS:-}"
read -r -a gen_extra <<< "${DEMO_GEN_ARGS:-}"

PY="$REPO_ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
cores="$(nproc 2>/dev/null || echo 1)"
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
if [ -z "${DEMO_THREADS:-}" ]; then
  load1="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
  if awk -v l="$load1" -v c="$cores" 'BEGIN { exit !(l >= c) }'; then DEMO_THREADS=1; else DEMO_THREADS="$cores"; fi
fi
case "$DEMO_TRAIN_MINUTES" in ''|*[!0-9.]*) echo "error: DEMO_TRAIN_MINUTES must be a number of minutes, got '$DEMO_TRAIN_MINUTES'" >&2; exit 2 ;; esac
case "$DEMO_SAMPLE" in ''|*[!0-9]*|0) echo "error: DEMO_SAMPLE must be a line number >= 1, got '$DEMO_SAMPLE'" >&2; exit 2 ;; esac
export OMP_NUM_THREADS="$DEMO_THREADS" MKL_NUM_THREADS="$DEMO_THREADS" PYTHONUNBUFFERED=1

raw="${DEMO_RAW:-$DEMO_DIR/data/aclsum}"
bin="${DEMO_BIN:-$DEMO_DIR/data-bin/aclsum}"
ckpt_dir="$DEMO_DIR/checkpoints"
gen_dir="$DEMO_DIR/generate"
mkdir -p "$DEMO_DIR"
timings="$DEMO_DIR/timings.txt"
: > "$timings"

start_all=$SECONDS
step_start=$SECONDS
step() {  # step NAME: header with the time and the machine's load
  step_start=$SECONDS
  step_name="$1"
  printf '\n=== %s  (load average %s, %s thread(s)) ===\n' "$1" "$(load)" "$DEMO_THREADS"
}
step_done() {
  local took=$((SECONDS - step_start))
  printf '%-11s %5ds  load %s\n' "$step_name" "$took" "$(load)" >> "$timings"
  printf -- '--- %s: %ds\n' "$step_name" "$took"
}
echo "demo: $cores core(s), load average $(load) at start; outputs under $DEMO_DIR/"

# 1. prepare
step prepare
if [ -f "$raw/prepare.json" ] || { [ -n "${DEMO_RAW:-}" ] && [ -f "$raw/train.src" ]; }; then
  echo "reusing the prepared text in $raw"
else
  "$PY" scripts/prepare_aclsum.py --out "$raw"
fi
for split in train dev-0 test-A; do
  for ext in src tgt; do
    [ -f "$raw/$split.$ext" ] || { echo "error: $raw/$split.$ext missing; delete $raw and re-run" >&2; exit 1; }
  done
done
n_test=$(grep -c '' "$raw/test-A.src")
echo "$(grep -c '' "$raw/train.src") training papers, $(grep -c '' "$raw/dev-0.src") dev, $n_test test"
step_done

# 2. preprocess
step preprocess
if [ -f "$bin/preprocess.json" ] || { [ -n "${DEMO_BIN:-}" ] && [ -f "$bin/dict.src.txt" ]; }; then
  echo "reusing the binarized data in $bin"
else
  overwrite=()
  [ -d "$bin" ] && overwrite=(--overwrite)   # a run cut short left partial files
  "$PY" scripts/preprocess.py --data "$raw" --out "$bin" --vocab-size "$DEMO_VOCAB" \
    --workers "$cores" "${overwrite[@]}"
fi
step_done

# 3. train
step train
if [ -f "$ckpt_dir/train.done" ] && [ -f "$ckpt_dir/checkpoint_last.pt" ]; then
  echo "reusing the trained model in $ckpt_dir ($(cat "$ckpt_dir/train.done")); rm $ckpt_dir/train.done to train again"
else
  hours=$(awk -v m="$DEMO_TRAIN_MINUTES" 'BEGIN { printf "%.4f", m / 60 }')
  limits=(--stop-time-hours "$hours")
  [ -n "$DEMO_MAX_UPDATE" ] && limits+=(--max-update "$DEMO_MAX_UPDATE")
  echo "training for at most $DEMO_TRAIN_MINUTES minutes${DEMO_MAX_UPDATE:+ or $DEMO_MAX_UPDATE updates}"
  bash scripts/train.sh "$DEMO_TRAIN_CONFIG" "$bin" "$ckpt_dir" "${limits[@]}" \
    "${train_extra[@]}" 2>&1 | tee "$DEMO_DIR/train.log"
  [ -f "$ckpt_dir/checkpoint_last.pt" ] || { echo "error: training wrote no $ckpt_dir/checkpoint_last.pt" >&2; exit 1; }
  updates=$(grep -oE 'num_updates[ =]+[0-9]+' "$DEMO_DIR/train.log" | tail -1 | grep -oE '[0-9]+$' || echo "?")
  echo "$updates updates, $((SECONDS - step_start))s, $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$ckpt_dir/train.done"
fi
step_done

# 4. generate (checkpoint_last: with 100 papers the dev loss is noisy and validation is sparse)
step generate
rm -rf "$gen_dir"
bash scripts/generate.sh "$DEMO_GEN_CONFIG" "$bin" "$ckpt_dir/checkpoint_last.pt" "$gen_dir" \
  "${gen_extra[@]}"
out="$gen_dir/generate-test-A.txt"
# generate.sh checked the output against test-A.ids; this is the same check (any --nbest) against
# the count of the text split, which a DEMO_BIN without .ids files still has
"$PY" -m deep_pyramidion.eval.generate_output --check "$out" --expected "$n_test" || exit 3
echo "$n_test summaries for the $n_test test-A documents"
step_done

# 5. score
step score
"$PY" scripts/score.py --generate-output "$out" --ref "$raw/test-A.tgt" --lead-source "$raw/test-A.src" \
  --name pyramidion --bootstrap "$DEMO_BOOTSTRAP" --json "$DEMO_DIR/rouge.json" | tee "$DEMO_DIR/rouge.txt"

# one summary beside its reference (sentences on their own lines, <q> is the sentence marker)
i=$((DEMO_SAMPLE - 1))
[ "$DEMO_SAMPLE" -le "$n_test" ] || { echo "error: DEMO_SAMPLE=$DEMO_SAMPLE but test-A has $n_test documents" >&2; exit 2; }
hyp=$(grep -P "^D-$i\t" "$out" | head -1 | cut -f3- || true)
ref=$(sed -n "${DEMO_SAMPLE}p" "$raw/test-A.tgt")
doc_id=$(sed -n "${DEMO_SAMPLE}p" "$raw/test-A.ids" 2>/dev/null || true)
[ -n "$hyp" ] || hyp="(empty summary)"
printf '%s\n' "$hyp" | sed 's/ *<q> */\n/g' | fold -s -w 70 > "$DEMO_DIR/sample.hyp"
printf '%s\n' "$ref" | sed 's/ *<q> */\n/g' | fold -s -w 70 > "$DEMO_DIR/sample.ref"
printf '\ntest-A document %s%s: generated summary (left) and reference abstract (right)\n' \
  "$DEMO_SAMPLE" "${doc_id:+ ($doc_id)}"
printf '%s\n' "GENERATED" "---------" | cat - "$DEMO_DIR/sample.hyp" > "$DEMO_DIR/sample.left"
printf '%s\n' "REFERENCE" "---------" | cat - "$DEMO_DIR/sample.ref" > "$DEMO_DIR/sample.right"
pr -m -t -w 148 "$DEMO_DIR/sample.left" "$DEMO_DIR/sample.right"
step_done

total=$((SECONDS - start_all))
printf '%-11s %5ds  load %s\n' total "$total" "$(load)" >> "$timings"
printf '\n=== wall time per step (%s) ===\n' "$timings"
cat "$timings"
echo "ROUGE: $DEMO_DIR/rouge.txt ($DEMO_DIR/rouge.json); summaries: $out"
