#!/usr/bin/env bash
# Builds (or resumes) the distillation set shipped in metaie_utils/data/distillation/: the local
# Qwen2.5-Coder-0.5B teacher's answers to the first N sentences of the offline news corpus, drawn by stage
# 01's seeded prefix-stable sampler with the default filters and seed 0 (so make run's 200 sentences and
# cpu.yaml's 1,000 are its head), asked exactly as stage 02 asks them (prompt metaie-1shot-v1, temperature
# 1.0, max_tokens 96, seed 0). Finished answers live in $OUT/02/cache.sqlite; a killed run resumes, and on a
# new machine the shipped answers are restored into the cache first (`shipped restore`), so only new ones are asked.
# Every EXPORT_EVERY seconds the answers so far are exported to the shipped file (and committed with
# COMMIT=1), so a lost machine loses little.
#
#
# PROMPT=ner-icl-v1 builds the NER-distillation baseline's set the same way (same sentences, teacher and
# sampling; stage 05's ner-distill replays it and asks the teacher only for sentences it lacks). The news sampler's
# pool holds 3,435 sentences: N=3435 covers MetaIE's 3,000 and every further sentence the baseline can ask to match
# MetaIE's instance count (~40 sentences a minute on one core).
#
#   taskset -c 1 env OMP_NUM_THREADS=1 N=3000 COMMIT=1 bash scripts/distill_shipped.sh > distill.log 2>&1 &
#   taskset -c 1 env OMP_NUM_THREADS=1 N=3435 PROMPT=ner-icl-v1 COMMIT=1 bash scripts/distill_shipped.sh > ner.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3000}
PROMPT=${PROMPT:-metaie-1shot-v1}
SHIPPED=metaie_utils/data/distillation/news-qwen2.5-0.5b-$PROMPT.jsonl.gz
if [ "$PROMPT" = metaie-1shot-v1 ]; then OUT=${OUT:-outputs/shipped_distill}; else OUT=${OUT:-outputs/shipped_distill_$PROMPT}; fi
PY=${PY:-.venv/bin/python}
EXPORT_EVERY=${EXPORT_EVERY:-1200}
COMMIT=${COMMIT:-0}
export METAIE_DATA_DIR=${METAIE_DATA_DIR:-$(cd .. && pwd)/shared/data}

if [ ! -s "$OUT/01/sentences.jsonl" ]; then
  $PY -m metaie_utils sample --corpus news --output "$OUT/01" --n "$N" --seed 0 --quiet
fi

# a new machine: put what is already shipped into the cache, so only the missing sentences are asked
if [ ! -f "$OUT/02/cache.sqlite" ] && [ -f "$SHIPPED" ]; then
  $PY -m metaie_utils shipped restore --cache "$OUT/02/cache.sqlite" --teacher local:qwen2.5-0.5b --output "$SHIPPED"
fi

export_now() {
  $PY -m metaie_utils shipped export --sentences "$OUT/01/sentences.jsonl" --cache "$OUT/02/cache.sqlite" \
      --teacher local:qwen2.5-0.5b --prompt-version "$PROMPT" --output "$SHIPPED" --log "$OUT/02/teacher_server.log" || return 0
  if [ "$COMMIT" = "1" ]; then
    git add metaie_utils/data/distillation && git commit -q -m "shipped distillation set $PROMPT: $(
      $PY -m metaie_utils shipped info --brief --output "$SHIPPED") (background run, scripts/distill_shipped.sh)" -- metaie_utils/data/distillation || true
  fi
}

$PY -m metaie_utils distill --input "$OUT/01" --output "$OUT/02" --model local:qwen2.5-0.5b \
    --prompt-version "$PROMPT" --temperature 1.0 --max-tokens 96 --concurrency 1 --seed 0 --quiet &
pid=$!
trap 'kill $pid 2>/dev/null || true' INT TERM
while kill -0 $pid 2>/dev/null; do
  for _ in $(seq "$EXPORT_EVERY"); do kill -0 $pid 2>/dev/null || break; sleep 1; done
  [ -f "$OUT/02/cache.sqlite" ] && export_now
done
wait $pid || echo "[distill_shipped] distill exited with $?"
export_now
echo "[distill_shipped] done"
