import time, torch
from metaie_utils.models.extractor import MetaIE
from metaie_utils.models.checkpoint import load_tokenizer
from metaie_utils.stages.train import protocol_queries, read_instances
s, labels, _ = protocol_queries(read_instances("metaie_reference/dataset/test.conll2003.json"))
pairs = sum(len(x) for x in labels)
base = MetaIE.from_pretrained("/tmp/meta", device="cuda", precision="fp32", batch_size=64)
ref = base.extract(s, labels)
def agree(a, b):
    x = {(i, t.label, t.start, t.end) for i, sp in enumerate(a) for t in sp}
    y = {(i, t.label, t.start, t.end) for i, sp in enumerate(b) for t in sp}
    return len(x & y) / max(1, len(x | y))
def run(name, ie):
    ie.extract(s[:8], labels[:8]); torch.cuda.synchronize(); t = time.perf_counter()
    out = ie.extract(s, labels); torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"{name:<40} {pairs / dt:>9.0f} pairs/s  agreement {agree(out, ref):.4f}", flush=True)
for b in (64, 256, 1024):
    run(f"fp32 batch {b}", MetaIE(base.model, base.tokenizer, "cuda", b, precision="fp32"))
    run(f"bf16 autocast batch {b}", MetaIE(base.model, base.tokenizer, "cuda", b, precision="bf16"))
m16 = MetaIE.from_pretrained("/tmp/meta", device="cuda", precision="fp32", batch_size=64).model.to(torch.bfloat16)
for b in (64, 256, 1024):
    run(f"bf16 weights batch {b}", MetaIE(m16, base.tokenizer, "cuda", b, precision="fp32"))
