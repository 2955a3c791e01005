#!/usr/bin/env bash
# Collect, here (where the package registry is reachable), what scripts/gpu_check.sh needs on the
# GPU machine that its image lacks: fairseq-fixed's source (built there against the image's torch)
# and the pure-Python packages fairseq and the data steps import, as wheels for the image's
# Python (3.12 by default). The GPU machine reaches no registry; carry the folder with the run
# (the device tool's `carry`), e.g.:  scripts/gpu_wheels.sh gpu_wheels
#
#   scripts/gpu_wheels.sh [DIR]        (default DIR: gpu_wheels; GPU_PYTHON_VERSION=3.12)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"
dir="${1:-gpu_wheels}"
version="${GPU_PYTHON_VERSION:-3.12}"
PY="$(venv_python)"
mkdir -p "$dir"
export PIP_CONFIG_FILE=/dev/null   # this machine's pip constraints are about its own torch
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
  --platform manylinux2014_x86_64 --implementation cp -d "$dir" \
  hydra-core==1.3.2 omegaconf==2.3.0 bitarray aclsum sienna nltk
# sdist-only packages, pure Python: turned into wheels here
"$PY" -m pip wheel -q --no-deps -w "$dir" antlr4-python3-runtime==4.9.3 rouge-score==0.1.2
# fairseq-fixed builds C++ and Cython extensions against torch: its source, built on the GPU machine
"$PY" -m pip download -q --no-deps --no-build-isolation -d "$dir" fairseq-fixed==0.12.3.1
ls -la "$dir" >&2
du -sh "$dir" >&2
