"""Models: the sequence labeler (the paper's meta-model), the generative student, and the one switch.

Layer: depends on ``metaie_utils.core`` only. Submodules:

- :mod:`.labels`      B/I/O head rows mapped by label name (any checkpoint order loads with its meaning)
- :mod:`.checkpoint`  backbone names, tokenizer and model loading, the training record and model card
- :mod:`.trainer`     ``TrainRecipe`` and ``train_token_classifier`` (meta-training and few-shot alike)
- :mod:`.extractor`   ``MetaIE``: batched extraction over every (text, label) pair
- :mod:`.generative`  the generative student (causal LM or seq2seq writing the spans)
- :mod:`.authors_decode`  the authors' inference.py decode, for comparison

This module holds the only place that switches between architectures: :func:`finetune` (train) and
:func:`load_extractor` (infer), keyed by ``architecture`` / the checkpoint's ``metaie_training.json``.
Adding an architecture means one branch in each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from metaie_utils.core.errors import UserError
from metaie_utils.core.params import ParamsError

ARCHITECTURES = ("seqlabel", "generative")


def finetune(train: list[dict], init: str, output_dir: Path, recipe: Any, architecture: str = "seqlabel",
             eval_instances: list[dict] | None = None, resume: bool = True, **kw: Any) -> Path:
    """Dispatch on ``architecture``: ``"seqlabel"`` -> :func:`train_token_classifier`; ``"generative"`` ->
    ``metaie_utils.models.generative.train_generative``."""
    if architecture == "seqlabel":
        from metaie_utils.models.trainer import train_token_classifier

        return train_token_classifier(train, init, output_dir, recipe, eval_instances, resume=resume, **kw)
    if architecture == "generative":
        from metaie_utils.models.generative import train_generative

        return train_generative(train, init, output_dir, recipe, eval_instances)
    raise ParamsError(f"architecture = {architecture!r}: use 'seqlabel' or 'generative'.")



def load_extractor(path: str | Path, device: str = "auto", batch_size: int = 32, precision: str = "auto",
                   max_length: int | None = None):
    """:class:`MetaIE` for a seqlabel checkpoint; ``models.generative.GenerativeIE`` when the checkpoint's
    ``metaie_training.json`` says ``architecture: generative``."""
    from metaie_utils.models.checkpoint import read_training_info
    from metaie_utils.models.extractor import MetaIE

    info = read_training_info(path) if Path(path).is_dir() else {}
    if info.get("architecture") == "generative":
        from metaie_utils.models.generative import GenerativeIE

        return GenerativeIE.from_pretrained(path, device=device, batch_size=batch_size)
    return MetaIE.from_pretrained(path, device=device, batch_size=batch_size, precision=precision,
                                  max_length=max_length or None)

def read_text_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file; a missing or non-UTF-8 file is a :class:`UserError` naming it (and the line)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--input {p}: no such file.")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"{p}:{line} is not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}). "
                        f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {p} > {p.stem}.utf8{p.suffix}`.") from None
    return text.splitlines()


def _cmd_extract(args) -> int:
    from metaie_utils.models.checkpoint import recorded_labels

    labels = recorded_labels(args.model) if args.labels is None else [x.strip() for x in args.labels.split(",") if x.strip()]
    if not labels:
        raise UserError(f"--labels {args.labels!r} names no label; pass e.g. --labels 'Person,Location'.")
    lines = read_text_lines(args.input) if args.input else [line.rstrip("\n") for line in sys.stdin]
    ie = load_extractor(args.model, device=args.device, batch_size=args.batch_size, precision=args.precision)
    from metaie_utils.models.extractor import MetaIE

    res = (ie.extract(lines, labels, conflict=args.conflict, decode=args.decode) if isinstance(ie, MetaIE)
           else ie.extract(lines, labels))
    dst = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for line, spans in zip(lines, res):
            dst.write(json.dumps({"text": line, "spans": [s.as_dict() for s in spans]}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            dst.close()
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("extract", help="extract spans for labels from text lines with a MetaIE model (JSONL out)",
                       description="Read one text per line (stdin or --input), write one JSON object per line: "
                                   '{"text": ..., "spans": [{"label", "text", "start", "end", "score", ...}]}.')
    p.add_argument("--model", required=True, help="checkpoint folder (train output), assets alias or Hub name")
    p.add_argument("--labels", default=None, help="comma-separated labels, e.g. 'Person,Location' (default: the labels "
                                                  "a `finetune` folder was tuned on)")
    p.add_argument("--input", help="text file, one text per line (default: stdin)")
    p.add_argument("--output", help="JSONL file to write (default: stdout)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--conflict", default="confidence", choices=["confidence", "all"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: fp32 on CPU, bf16/fp16 on GPU; bf16 on a CPU with AMX is ~2x faster, not bit-exact")
    p.add_argument("--decode", default="default", choices=["default", "authors"],
                   help="default: first sub-token per word, B or I-after-O starts a span; authors: their inference.py")
    p.set_defaults(func=_cmd_extract)
