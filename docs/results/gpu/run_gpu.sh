#!/usr/bin/env bash
# Run from the repository root on a GPU machine that has torch and transformers but cannot reach the internet.
# .devcarry/ (git-ignored) held what travelled with it: whl/ (pydantic, pydantic_core, annotated-types,
# typing-inspection, nltk wheels for cp312), data/ (../shared/data's conll2003 and metaie_reference), and meta16/
# (make run's meta-model, outputs/04_train_meta_model/defaults/model, saved in fp16 to fit the 64 MB transfer and
# restored to fp32 below). The precision probes (probe_extract_precision*.py) ran the same way.
# GPU checks of issue 16 item 5: the gpu test tier, bench_extract on make run's meta-model, one few-shot fine-tune.
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD METAIE_DATA_DIR=$PWD/.devcarry/data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc;
  python3 -c "import torch,transformers,sys;print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())"; } 2>&1 | tee $OUT/gpu.txt
python3 - <<'PY' 2>&1 | tee -a $OUT/gpu.txt
import shutil
from safetensors.torch import load_file, save_file
shutil.copytree(".devcarry/meta16", "/tmp/meta", dirs_exist_ok=True)
sd = load_file(".devcarry/meta16/model.safetensors")
save_file({k: v.float() for k, v in sd.items()}, "/tmp/meta/model.safetensors", metadata={"format": "pt"})
print("meta-model restored to fp32:", len(sd), "tensors")
PY
echo "== gpu tests"; timeout 150 python3 -m pytest -m gpu tests/test_paper_backbone.py -q -p no:cacheprovider -W ignore 2>&1 | tail -15 | tee $OUT/gpu_tests.txt
echo "== bench_extract"; timeout 150 python3 benchmarks/bench_extract.py --device cuda --model /tmp/meta --sentences 0 --loop-sentences 300 2>&1 | grep -v "Loading weights" | tail -12 | tee $OUT/bench_extract_gpu.txt
echo "== finetune"; timeout 200 python3 -m metaie_utils finetune --model /tmp/meta --dataset conll2003 --output /tmp/ft --eval --test-cap 0 2>&1 | tr '\r' '\n' | grep -v "Loading weights\|it/s\]\|s/it\]" | tail -25 | tee $OUT/finetune_gpu.txt
cp /tmp/ft/metaie_training.json $OUT/finetune_training.json 2>/dev/null; ls /tmp/ft
