#!/usr/bin/env bash
# Every CUDA check of the project in one command (scripts/gpu_check.py holds the steps):
#
#   scripts/gpu_check.sh OUT_DIR                 on a machine with one CUDA GPU (budget 480 s)
#   scripts/gpu_check.sh --dry-run OUT_DIR       the same steps on the CPU, tiny sizes (the suite)
#   scripts/gpu_check.sh --budget 300 OUT_DIR    a smaller budget; the steps stop themselves
#
# OUT_DIR receives summary.json + summary.txt (every step: status, seconds, figures; the GPU,
# driver, torch and triton versions) and each step's log.
#
# On the GPU machine the image's python3 (torch, triton, transformers) is used, and what it lacks is
# built from a clean checkout without network: fairseq from the source in gpu_wheels/ (built here
# against the image's torch, in .gpu-build/, about a minute on 16 cores) and the pure-Python
# packages from the wheels there (scripts/gpu_wheels.sh collects them beforehand, where the package
# registry is reachable). --dry-run uses the project's .venv (make install).
#
# Settings: GPU_PYTHON (default python3), GPU_WHEELS (default gpu_wheels), GPU_BUILD (default
# .gpu-build). Exit status: 0 every step ok or skipped, 1 a step failed, 2 usage or set-up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"
cd "$REPO_ROOT"

dry=0 budget=480 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --budget) budget="${2:?--budget needs a number of seconds}"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "error: one OUT_DIR only" >&2; exit 2; }; out="$1" ;;
  esac
  shift
done
[ -n "$out" ] || { echo "usage: scripts/gpu_check.sh [--dry-run] [--budget SECONDS] OUT_DIR" >&2; exit 2; }
case "$budget" in ''|*[!0-9.]*) echo "error: --budget must be a number of seconds, got '$budget'" >&2; exit 2 ;; esac

if [ "$dry" = "1" ]; then
  PY="$VENV_DIR/bin/python"
  [ -x "$PY" ] || { echo "error: no $VENV_DIR: run make install first" >&2; exit 2; }
  exec "$PY" "$REPO_ROOT/scripts/gpu_check.py" "$out" --budget "$budget" --dry-run
fi

PY="${GPU_PYTHON:-python3}"
wheels="${GPU_WHEELS:-gpu_wheels}" build="${GPU_BUILD:-.gpu-build}"
command -v "$PY" > /dev/null || {
  echo "error: GPU_PYTHON=$PY: no such python (set GPU_PYTHON to the GPU image's python with torch)" >&2; exit 2; }
"$PY" -c "import torch" 2> /dev/null || {
  echo "error: $PY has no torch: the GPU check runs with the python of a GPU image that has torch (set GPU_PYTHON=/path/to/python; --dry-run uses the project's .venv)" >&2; exit 2; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null || {
  echo "error: $PY sees no CUDA GPU (use --dry-run on a machine without one)" >&2; exit 2; }
start=$SECONDS
paths=()
if ! "$PY" -c "import fairseq" 2>/dev/null; then
  sdist="$(ls "$wheels"/fairseq_fixed-*.tar.gz 2>/dev/null | head -n 1 || true)"
  [ -n "$sdist" ] || { echo "error: fairseq is not installed and $wheels/ holds no fairseq_fixed source: run scripts/gpu_wheels.sh $wheels where the package registry is reachable, and carry $wheels/" >&2; exit 2; }
  src="$build/fairseq_fixed"
  if [ ! -f "$src/.built" ]; then
    rm -rf "$src" && mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components 1
    # CUDA_HOME unset: fairseq's optional CUDA extensions (the n-gram blocker's kernel, NAT) are not
    # needed and would take minutes; the Cython batching code and the C++ helpers are built
    (cd "$src" && env -u CUDA_HOME "$PY" setup.py build_ext --inplace -j "$(nproc)" > ../fairseq_build.log 2>&1) || {
      echo "error: building fairseq failed; see $build/fairseq_build.log" >&2; tail -n 20 "$build/fairseq_build.log" >&2; exit 2; }
    touch "$src/.built"
  fi
  paths+=("$REPO_ROOT/$src")
fi
missing="$("$PY" -c "
import importlib.util
need = {'hydra': 'hydra-core', 'omegaconf': 'omegaconf', 'bitarray': 'bitarray', 'aclsum': 'aclsum',
        'rouge_score': 'rouge-score', 'nltk': 'nltk', 'sentencepiece': 'sentencepiece', 'regex': 'regex'}
print(' '.join(p for m, p in need.items() if importlib.util.find_spec(m) is None))")"
if [ -n "$missing" ]; then
  read -r -a packages <<< "$missing"
  case " $missing " in *" omegaconf "*) packages+=(antlr4-python3-runtime) ;; esac   # omegaconf's
  case " $missing " in *" aclsum "*) packages+=(sienna) ;; esac                      # aclsum's
  mkdir -p "$build/site"
  "$PY" -m pip install -q --no-index --find-links "$wheels" --no-deps --target "$build/site" \
    "${packages[@]}" || {
    echo "error: installing ${packages[*]} from $wheels/ failed (run scripts/gpu_wheels.sh there first)" >&2; exit 2; }
  paths+=("$REPO_ROOT/$build/site")
fi
paths+=("$REPO_ROOT")
PYTHONPATH="$(IFS=:; echo "${paths[*]}")${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
echo "gpu_check: set-up took $((SECONDS - start)) s" >&2
"$PY" "$REPO_ROOT/scripts/gpu_check.py" "$out" --budget "$budget"
