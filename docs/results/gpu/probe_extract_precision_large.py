import time, torch
from transformers import RobertaConfig, RobertaForTokenClassification
from metaie_utils.models.extractor import MetaIE
from metaie_utils.models.checkpoint import load_tokenizer
from metaie_utils.stages.train import protocol_queries, read_instances
s, labels, _ = protocol_queries(read_instances("metaie_reference/dataset/test.conll2003.json"))
s, labels = s[:1500], labels[:1500]
pairs = sum(len(x) for x in labels)
tok = load_tokenizer("/tmp/meta")
torch.manual_seed(0)
cfg = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                    intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, num_labels=3,
                    id2label={0: "O", 1: "B", 2: "I"}, label2id={"O": 0, "B": 1, "I": 2})
model = RobertaForTokenClassification(cfg).cuda().eval()
def run(name, ie):
    ie.extract(s[:8], labels[:8]); torch.cuda.synchronize(); t = time.perf_counter()
    ie.extract(s, labels); torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"RoBERTa-large shape (random weights), {name:<28} {pairs / dt:>8.0f} pairs/s", flush=True)
for b in (64, 256):
    run(f"fp32 batch {b}", MetaIE(model, tok, "cuda", b, precision="fp32"))
    run(f"bf16 autocast batch {b}", MetaIE(model, tok, "cuda", b, precision="bf16"))
print("peak MB", torch.cuda.max_memory_allocated() / 2**20)
