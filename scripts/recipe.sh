# Shared by scripts/train.sh, scripts/generate.sh and scripts/demo.sh (sourced, not run).
# Reads a recipe (configs/README.md): one `--flag [VALUE]` per line, VALUE = the rest of the line
# taken verbatim as one argument; blank lines and `#` comments skipped; nothing is evaluated.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USER_DIR="$REPO_ROOT/deep_pyramidion"

# The venv whose python and fairseq the scripts run: the repo's .venv, or another one named by
# DEEP_PYRAMIDION_VENV (make test-newest points it at .venv-newest); PATH when it has none.
VENV_DIR="${DEEP_PYRAMIDION_VENV:-$REPO_ROOT/.venv}"

# fairseq's console scripts: the venv's first, then PATH
fairseq_bin() {
  if [ -x "$VENV_DIR/bin/$1" ]; then echo "$VENV_DIR/bin/$1"; else echo "$1"; fi
}

venv_python() {  # the venv's python, else python3 from PATH
  if [ -x "$VENV_DIR/bin/python" ]; then echo "$VENV_DIR/bin/python"; else command -v python3; fi
}

read_recipe() {  # read_recipe FILE -> global array RECIPE
  local file="$1" line flag value n=0
  [ -f "$file" ] || { echo "error: CONFIG $file: no such file" >&2; exit 2; }
  RECIPE=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"      # leading blanks
    line="${line%"${line##*[![:space:]]}"}"      # trailing blanks
    case "$line" in ''|'#'*) continue ;; esac
    case "$line" in
      --?*) ;;
      *) echo "error: $file:$n: expected '--flag [value]', got: $line" >&2; exit 2 ;;
    esac
    flag="${line%%[[:space:]]*}"
    RECIPE+=("$flag")
    if [ "$flag" != "$line" ]; then
      value="${line#"$flag"}"
      value="${value#"${value%%[![:space:]]*}"}"
      RECIPE+=("$value")
    fi
  done < "$file"
}

check_not_in_recipe() {  # check_not_in_recipe FILE FLAG...: these come from the script's arguments
  local file="$1" flag arg
  shift
  for flag in "$@"; do
    for arg in "${RECIPE[@]}"; do
      if [ "$arg" = "$flag" ]; then
        echo "error: $file: $flag is set by the script's arguments; remove it from the recipe" >&2
        exit 2
      fi
    done
  done
}

run_or_print() {
  if [ "${DRY_RUN:-0}" = "1" ]; then
    printf '%s\n' "$@"
  else
    echo "+ $*" >&2
    "$@"
  fi
}

converted_model_flags() {  # converted_model_flags CONVERT_JSON -> global array MODEL_FLAGS
  # a converted BART's own fairseq-train flags (sizes, positions, schedule), as pyramidion-convert
  # recorded them, so that the model fairseq-train builds is the converted one
  mapfile -t MODEL_FLAGS < <("$(venv_python)" -c 'import json, sys
print("\n".join(json.load(open(sys.argv[1]))["fairseq_train_flags"]))' "$1")
}
