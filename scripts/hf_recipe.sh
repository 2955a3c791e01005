#!/usr/bin/env bash
# A fairseq-trained pyramidion on Hugging Face: export -> summarize with transformers' pipeline ->
# score
# (README: "Hugging Face: export, generate(), fine-tuning").
#
#   scripts/hf_recipe.sh CKPT DATA_BIN TEXT_DIR WORK_DIR
#   scripts/hf_recipe.sh runs/aclsum/checkpoint_best.pt data-bin/aclsum data/aclsum runs/aclsum-hf
#
#   CKPT      the fairseq checkpoint (a pyramidion-convert folder works too: DIR/model.pt, DIR)
#   DATA_BIN  its data folder: dictionary (dict.src.txt) and BPE (spm.model or encoder.json +
#             vocab.bpe), as for pyramidion-summarize
#   TEXT_DIR  text splits ({train,dev-0,test-A}.{src,tgt,ids}); test-A is summarized and scored
#   WORK_DIR  written: export/ (the Hugging Face folder), hyps-test-A.txt, rouge.json
#
#   1. export     pyramidion-export-hf --checkpoint CKPT --data DATA_BIN WORK_DIR/export
#   2. summarize  scripts/hf_summarize.py --model WORK_DIR/export TEXT_DIR/test-A.src: transformers'
#                 pipeline("summarization", model=WORK_DIR/export, trust_remote_code=True), the
#                 export's own pipeline (its code and generation config; transformers >= 5, tested
#                 with 5.24 and 5.25), one document per batch
#   3. score      scripts/score.py ROUGE-1/2/L/Lsum against TEXT_DIR/test-A.tgt, with a Lead row
#
# Settings (environment variables): EXPORT_ARGS (extra flags of pyramidion-export-hf, e.g.
# "--beam 4 --max-len-b 256"), SUMMARIZE_ARGS (of hf_summarize.py), DRY_RUN=1 prints the commands.
# An existing WORK_DIR/export is replaced (--force): the export is the checkpoint's, always redone.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/recipe.sh"

if [ $# -ne 4 ]; then
  echo "usage: scripts/hf_recipe.sh CKPT DATA_BIN TEXT_DIR WORK_DIR" >&2
  exit 2
fi
ckpt="$1" data="$2" text="$3" work="$4"
[ -f "$ckpt" ] || { echo "error: CKPT $ckpt: no such file" >&2; exit 2; }
[ -d "$data" ] || { echo "error: DATA_BIN $data: no such folder" >&2; exit 2; }
[ -f "$text/test-A.src" ] || { echo "error: TEXT_DIR $text: no test-A.src" >&2; exit 2; }
read -r -a export_extra <<< "${EXPORT_ARGS:-}"
read -r -a summarize_extra <<< "${SUMMARIZE_ARGS:-}"
PY="$(venv_python)"
[ "${DRY_RUN:-0}" = "1" ] || mkdir -p "$work"

run_or_print "$PY" -m deep_pyramidion.fairseq_plugin.export_hf --checkpoint "$ckpt" \
  --data "$data" --force "${export_extra[@]}" "$work/export"
if [ "${DRY_RUN:-0}" = "1" ]; then
  echo "$PY $here/hf_summarize.py --model $work/export ${summarize_extra[*]} $text/test-A.src > $work/hyps-test-A.txt"
else
  "$PY" "$here/hf_summarize.py" --model "$work/export" "${summarize_extra[@]}" \
    "$text/test-A.src" > "$work/hyps-test-A.txt.partial"
  mv "$work/hyps-test-A.txt.partial" "$work/hyps-test-A.txt"
fi
run_or_print "$PY" "$REPO_ROOT/scripts/score.py" --hyp "$work/hyps-test-A.txt" \
  --ref "$text/test-A.tgt" --lead-source "$text/test-A.src" --json "$work/rouge.json"
