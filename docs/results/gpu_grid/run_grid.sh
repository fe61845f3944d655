#!/usr/bin/env bash
# GPU companion of the CPU grid (issue 17): params/cpu.yaml's meta-training (stage 04, from the shipped set's 03
# conversion) and its few-shot grid for vanilla and MetaIE (14 datasets x 3 seeds, 300 test sentences) on one GPU.
# MiniLM-L6 travels rounded to fp16 (the 64 MiB transfer limit) and is widened back to fp32 here.
# DRY=1: a seconds-long local check of the whole path (2 meta steps, 2 datasets, 1 seed, 3 test sentences, CPU).
cd "$(dirname "$0")/../.."
T0=$(date +%s)
OUT=${OUT:-/tmp/gout}; mkdir -p "$OUT"
if [ -z "$DRY" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devcarry/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  PY=python3
else
  PY=.venv/bin/python
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
W=/tmp/gw; rm -rf $W; mkdir -p $W/data $W/c03
tar -xJf .devcarry/g/data.tar.xz -C $W/data && export METAIE_DATA_DIR=$W/data
tar -xJf .devcarry/g/c03.tar.xz -C $W/c03
if [ -z "$DRY" ]; then
  A=$W/minilm; mkdir -p $A && cp -r .devcarry/g/minilm16/. $A/
  $PY -c "
from safetensors.torch import load_file, save_file
p='$A/model.safetensors'; sd=load_file(p)
save_file({k: v.float() for k, v in sd.items()}, p, metadata={'format': 'pt'}); print('minilm widened to fp32:', len(sd), 'tensors')"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null; nproc
  $PY -c "import torch,transformers,sys;print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.is_available())"; } > $OUT/machine.txt 2>&1
echo "== meta-training $(( $(date +%s) - T0 )) s"
DRY=$DRY $PY - <<'PY' 2>&1 | grep -v "Loading weights" | tail -8 | tee $OUT/meta_train.txt
import json, os, time
from pathlib import Path
from metaie_utils.core.params import load_params, stage_config
from metaie_utils.core.runs import seed_everything
from metaie_utils.stages import train as stage
over = {"input_dir": "/tmp/gw/c03/cpu", "protocol_eval": False}
if not os.environ.get("DRY"):
    over["backbone"] = "/tmp/gw/minilm"  # MiniLM-L6 widened back from its fp16 transfer copy
if os.environ.get("DRY"):
    over.update(meta_max_steps=2, eval_steps=0)
cfg = stage_config("04_train_meta_model", load_params(["params/cpu.yaml"], over))
seed_everything(cfg.seed)
train, heldout, prov = stage.load_training_data(cfg.input_dir, cfg.heldout_fraction, cfg.seed, cfg.meta_max_instances)
t = time.time()
out = stage.finetune(train, cfg.backbone, Path("/tmp/gw/meta"), cfg.recipe(), cfg.architecture, heldout or None, provenance=prov)
info = stage.read_training_info(out)
print(json.dumps({"n_train": len(train), "n_heldout": len(heldout or []), "seconds": round(time.time() - t, 1),
                  **{k: info.get(k) for k in ("global_step", "final_eval", "precision", "train_samples_per_second")}}, default=str))
PY
cp /tmp/gw/meta/metaie_training.json $OUT/ 2>/dev/null
[ -f /tmp/gw/meta/config.json ] || { echo "no meta-model"; exit 4; }
echo "== grid $(( $(date +%s) - T0 )) s"
R=outputs/05_fewshot_eval/gpu
( while true; do sleep 10; [ -f $R/results.csv ] && cp $R/results.csv $OUT/results.csv && gzip -c $R/counts.jsonl > $OUT/counts.jsonl.gz; done ) &
COPIER=$!
if [ -n "$DRY" ]; then
  EXTRA=(--set test_cap=3 --set fewshot_max_steps=2 --set fewshot_min_epochs=0 --set fewshot_workers=2 --seeds 1 --dataset conll2003 --dataset conll04)
else
  EXTRA=(--backbone /tmp/gw/minilm --set fewshot_workers=${WORKERS:-8} --dataset conll2003 --dataset conll04 --dataset casie --dataset qasrl --dataset absa-14res --dataset aste-14res --dataset wnut17 --dataset ade --dataset up-ewt --dataset absa-14lap --dataset aste-14lap --dataset bc5cdr --dataset bionlp2004 --dataset conll2003-authors)
fi
LEFT=$(( ${BUDGET:-570} - ($(date +%s) - T0) ))
timeout $LEFT $PY -m metaie_utils evaluate --model /tmp/gw/meta --params params/cpu.yaml --set 'initializations=[vanilla,metaie]' \
  --run-name gpu "${EXTRA[@]}" 2>&1 | tr '\r' '\n' | grep -v "Loading weights\|it/s\]\|s/it\]" | tail -80 > $OUT/eval.log
echo "evaluate exit ${PIPESTATUS[0]} after $(( $(date +%s) - T0 )) s" | tee -a $OUT/eval.log
kill $COPIER 2>/dev/null
[ -f $R/results.csv ] && cp $R/results.csv $OUT/results.csv && gzip -c $R/counts.jsonl > $OUT/counts.jsonl.gz
cp $R/manifest.json $OUT/ 2>/dev/null
wc -l $OUT/results.csv 2>/dev/null
