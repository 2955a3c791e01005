#!/usr/bin/env bash
# Train every --encoder-pooling option for the same number of updates on ACLSum and print the
# validation loss, ROUGE and speed side by side.
#
#   scripts/compare_pooling.sh [--out DIR] [--updates N] [--docs N] [--vocab-size N]
#                              [--poolings "topk avg ..."] [--train-args "..."] [--gen-args "..."]
#                              [--threads N]
#   scripts/compare_pooling.sh --updates 2 --docs 6 --gen-args "--min-len 5 --max-len-b 20"
#
# For each option: scripts/train.sh with configs/train/aclsum_cpu.args (the CPU recipe of
# `make demo`: d=128, 2+2 layers, 2048 pieces in chunks of 256, pooled to 512 then 128), the
# option's --encoder-pooling, --max-update N and no time limit, so every option gets exactly N
# updates; then scripts/generate.sh with configs/generate/aclsum_cpu.args on test-A, then
# scripts/score.py (ROUGE F1, no bootstrap). Validation loss: fairseq's last "valid on 'dev-0'"
# line (fairseq validates when training stops; a dev paper whose abstract is longer than
# --max-target-positions is skipped, the same for every option, as a small --vocab-size makes
# abstracts long; test-A is never cut: every paper must get a summary, or the row fails).
# Speed: updates per second of fairseq's own training time ("done training in S seconds": the
# training loop with its validation and checkpoint saving, not the process start), and the wall
# seconds of the fairseq-train and fairseq-generate processes.
#
# Defaults are CPU-sized: 100 updates per option of the `make demo` recipe, 9 options, minutes
# (not hours) per option on 2 cores. Everything goes under --out (default
# work_dirs/compare_pooling/, git-ignored): data/ (prepared text), data-bin/ (binarized),
# <option>/ (checkpoints, logs, summaries, rouge.json) and results.tsv. Prepared and binarized
# data are reused on a second run; training and generation run again.
# Exit status: 0 when every option trained, generated and scored; 1 otherwise (its row says
# FAILED and its logs are kept); 2 on bad arguments.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"
cd "$REPO_ROOT"

out=work_dirs/compare_pooling   # git-ignored
updates=100
docs=""
vocab=4000
poolings="topk hard-topk avg max conv dilated-conv most-used seqpool none"
train_args=""
gen_args=""
threads=""

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in -h|--help) usage ;; esac
  [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; usage; }
  case "$1" in
    --out) out="$2" ;;
    --updates) updates="$2" ;;
    --docs) docs="$2" ;;
    --vocab-size) vocab="$2" ;;
    --poolings) poolings="$2" ;;
    --train-args) train_args="$2" ;;
    --gen-args) gen_args="$2" ;;
    --threads) threads="$2" ;;
    *) echo "error: unknown argument $1" >&2; usage ;;
  esac
  shift 2
done
positive() { case "$2" in ''|*[!0-9]*|0) echo "error: $1 must be a positive integer, got '$2'" >&2; exit 2 ;; esac; }
positive --updates "$updates"
positive --vocab-size "$vocab"
[ -z "$docs" ] || positive --docs "$docs"
[ -z "$threads" ] || positive --threads "$threads"
read -r -a pooling_list <<< "$poolings"
[ ${#pooling_list[@]} -gt 0 ] || { echo "error: --poolings is empty" >&2; exit 2; }
read -r -a train_extra <<< "$train_args"
read -r -a gen_extra <<< "$gen_args"

PY="$(venv_python)"
cores="$(nproc 2>/dev/null || echo 1)"
# on a CPU already busy, one thread per process runs faster than oversubscribed ones
if [ -z "$threads" ]; then
  load1="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
  if awk -v l="$load1" -v c="$cores" 'BEGIN { exit !(l >= c) }'; then threads=1; else threads="$cores"; fi
fi
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" PYTHONUNBUFFERED=1
now() { date +%s.%N; }

# options the model does not know fail here, before any data work
known=$("$PY" -c 'from deep_pyramidion.config import POOLINGS; print(" ".join(sorted(POOLINGS)))' 2>/dev/null)
for p in "${pooling_list[@]}"; do
  case " $known none lambda " in *" $p "*) ;; *) echo "error: --poolings: unknown option '$p' (known: $known none)" >&2; exit 2 ;; esac
done
mkdir -p "$out"

# 1. data: ACLSum text, optionally cut to the first --docs documents of each split, binarized
raw="$out/data/aclsum"
if [ -f "$raw/prepare.json" ]; then
  echo "reusing the prepared text in $raw"
else
  "$PY" scripts/prepare_aclsum.py --out "$raw"
fi
text="$raw"
if [ -n "$docs" ]; then
  text="$out/data/aclsum-$docs"
  mkdir -p "$text"
  for split in train dev-0 test-A; do
    for ext in src tgt ids; do
      if [ -f "$raw/$split.$ext" ]; then head -n "$docs" "$raw/$split.$ext" > "$text/$split.$ext"; fi
    done
  done
fi
bin="$out/data-bin/$(basename "$text")-v$vocab"
if [ -f "$bin/preprocess.json" ]; then
  echo "reusing the binarized data in $bin"
else
  overwrite=()
  [ -d "$bin" ] && overwrite=(--overwrite)   # a run cut short left partial files
  "$PY" scripts/preprocess.py --data "$text" --out "$bin" --vocab-size "$vocab" \
    --workers "$cores" "${overwrite[@]}"
fi
n_test=$(grep -c '' "$text/test-A.tgt")
echo "$(grep -c '' "$text/train.src") training papers, $(grep -c '' "$text/dev-0.src") dev, $n_test test; $updates updates per option, $threads thread(s)"

# 2. one run per option
results="$out/results.tsv"
printf 'pooling\tupdates\tvalid_loss\tR-1\tR-2\tR-L\tR-Lsum\tupdates_per_s\ttrain_wall_s\tgenerate_wall_s\tstatus\n' > "$results"
status=0
for pooling in "${pooling_list[@]}"; do
  run="$out/$pooling"
  rm -rf "$run"
  mkdir -p "$run"
  echo
  echo "=== $pooling ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?))"
  row_status=ok
  t0=$(now)
  if ! bash scripts/train.sh configs/train/aclsum_cpu.args "$bin" "$run/checkpoints" \
      --encoder-pooling "$pooling" --max-update "$updates" --stop-time-hours 0 \
      --skip-invalid-size-inputs-valid-test \
      "${train_extra[@]}" > "$run/train.log" 2>&1; then
    row_status=FAILED
    echo "training failed; last lines of $run/train.log:" >&2
    tail -n 15 "$run/train.log" >&2
  fi
  train_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  done_updates=$(grep -oE 'num_updates[ =]+[0-9]+' "$run/train.log" | tail -1 | grep -oE '[0-9]+$' || echo 0)
  valid_loss=$(grep "valid on 'dev-0' subset" "$run/train.log" | tail -1 | grep -oE '\| loss [0-9.]+' | grep -oE '[0-9.]+$' || echo "-")
  gen_s="-"
  scores="-\t-\t-\t-"
  if [ "$row_status" = ok ]; then
    t0=$(now)
    if bash scripts/generate.sh configs/generate/aclsum_cpu.args "$bin" \
        "$run/checkpoints/checkpoint_last.pt" "$run/generate" "${gen_extra[@]}" \
        > "$run/generate.log" 2>&1; then
      gen_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
      if "$PY" scripts/score.py --generate-output "$run/generate/generate-test-A.txt" \
          --ref "$text/test-A.tgt" --bootstrap 0 --json "$run/rouge.json" > "$run/rouge.txt" 2>&1; then
        scores=$("$PY" - "$run/rouge.json" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    system = json.load(f)["systems"]["model"]
print("\t".join(f"{system[m]['f1']:.2f}" for m in ("rouge1", "rouge2", "rougeL", "rougeLsum")))
EOF
)
      else
        row_status=FAILED
        echo "scoring failed:" >&2
        tail -n 15 "$run/rouge.txt" >&2
      fi
    else
      row_status=FAILED
      echo "generation failed; last lines of $run/generate.log:" >&2
      tail -n 15 "$run/generate.log" >&2
    fi
  fi
  loop_s=$(grep -oE 'done training in [0-9.]+ seconds' "$run/train.log" | grep -oE '[0-9.]+' || echo 0)
  ups=$(awk -v u="$done_updates" -v s="$loop_s" 'BEGIN { if (s > 0) printf "%.3f", u / s; else print "-" }')
  [ "$row_status" = ok ] || status=1
  printf '%s\t%s\t%s\t%b\t%s\t%s\t%s\t%s\n' "$pooling" "$done_updates" "$valid_loss" "$scores" \
    "$ups" "$train_s" "$gen_s" "$row_status" >> "$results"
  tail -n 1 "$results" | tr '\t' ' '
done

# 3. side by side
echo
echo "=== --encoder-pooling compared: $updates updates each, test-A ROUGE F1 ($n_test papers), $threads thread(s)"
column -t -s $'\t' "$results" 2>/dev/null || cat "$results"
echo "(table: $results; logs, summaries and rouge.json per option under $out/)"
exit "$status"
