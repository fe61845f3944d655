"""The generative student of the architecture ablation: an LM that writes the spans of a label.

The paper (section "architecture") compares the sequence-labeling meta-model with students that
*generate* the spans for a label: seq2seq (BART, T5) and causal LMs (GPT2, OPT). This module trains
such a student on the same instances as stage 04 and exposes the same extraction API as
:class:`metaie_utils.extraction.MetaIE`, so stage 05 can few-shot it like any other initialization.

Format (one example per instance)::

    input : "Sentence: Hillary Clinton meets the press .\\nLabel: Person\\nSpans:"
    target: " Hillary Clinton"            (several spans: " span1; span2"; none: " none")

The sentence is the instance's words joined by single spaces, at training and at inference, so the
model sees one tokenization. At inference, greedy generation is cut at the first newline, split on
``;`` and every span text is located in the sentence's words (the :mod:`metaie_utils.text` tokenizer,
case-insensitive, every non-overlapping occurrence, as the authors' BIO conversion tags every
occurrence); spans that are not in the sentence are dropped.

Backbones:

- causal LMs (``AutoModelForCausalLM``): any Hub name or folder, or a GGUF file. Offline here,
  ``init="smollm2-135m"`` loads the packaged SmolLM2-135M GGUF through transformers' GGUF support
  (``from_pretrained(dir, gguf_file=name)``, dequantized to float32 once and cached as a plain folder,
  see :func:`dequantized_gguf`; needs the ``gguf`` package); ``qwen2.5-0.5b`` likewise.
- seq2seq LMs (``AutoModelForSeq2SeqLM``): BART/T5 by Hub name, e.g. ``facebook/bart-large`` or
  ``google-t5/t5-base`` (the paper's choices; GPU advised). The input goes to the encoder and the
  target is the decoder's labels.

>>> parse_generation(" Hillary Clinton; the press\\nLabel: x")
['Hillary Clinton', 'the press']
>>> locate_spans(["Tom", "met", "tom", "."], ["tom"])
[(0, 1), (2, 3)]
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from metaie_utils.core.text import word_tokenize

ARCHITECTURE = "generative"

log = logging.getLogger(__name__)


TRAINING_FILE = "metaie_training.json"


PROMPT_VERSION = "gen-v1"


NONE_TARGET = "none"


SEP = "; "


def build_prompt(sentence_words: Sequence[str], label: str) -> str:
    """``(["Tom", "runs"], "Person")`` -> ``"Sentence: Tom runs\\nLabel: Person\\nSpans:"``."""
    return f"Sentence: {' '.join(sentence_words)}\nLabel: {label}\nSpans:"


def build_target(span_texts: Sequence[str]) -> str:
    """``["Tom", "Ann"]`` -> ``" Tom; Ann"``; ``[]`` -> ``" none"`` (duplicates dropped, order kept)."""
    uniq = list(dict.fromkeys(t for t in span_texts if t))
    return " " + (SEP.join(uniq) if uniq else NONE_TARGET)


def parse_generation(text: str) -> list[str]:
    """A generated continuation -> span texts: cut at the first newline, split on ``;``, drop ``none``.

    >>> parse_generation(" none")
    []
    >>> parse_generation(" Paris ; Paris;  Rome ")
    ['Paris', 'Rome']
    """
    first = text.split("\n", 1)[0]
    out = []
    for piece in first.split(";"):
        piece = piece.strip()
        if piece and piece.lower() != NONE_TARGET and piece not in out:
            out.append(piece)
    return out


def locate_spans(words: Sequence[str], span_texts: Iterable[str]) -> list[tuple[int, int]]:
    """Word spans ``(start, end)`` (half-open) of every occurrence of each span text in ``words``.

    Each span text is tokenized with the project tokenizer and matched case-insensitively as an exact
    word sequence. Occurrences that overlap an earlier found span are skipped; the result is sorted.

    >>> locate_spans("the New York Times in New York".split(), ["New York Times", "New York"])
    [(1, 4), (5, 7)]
    >>> locate_spans(["a", "b"], ["zzz"])
    []
    """
    low = [w.lower() for w in words]
    taken = [False] * len(words)
    found: list[tuple[int, int]] = []
    for t in span_texts:
        toks = [w.lower() for w in word_tokenize(t)] or [t.lower()]
        n = len(toks)
        for i in range(len(low) - n + 1):
            if low[i : i + n] == toks and not any(taken[i : i + n]):
                found.append((i, i + n))
                for j in range(i, i + n):
                    taken[j] = True
    return sorted(found)


def instance_parts(inst: Mapping[str, Any]) -> tuple[list[str], str, list[tuple[int, int]]]:
    """An instance in the authors' format -> ``(sentence_words, label, word spans in the sentence)``.

    A view of :func:`metaie_utils.core.bio.split_instance` (the one splitter) for the generative student.

    >>> instance_parts({"words": ["Person", ":", "Tom", "met", "Ann"], "ner": ["O", "O", "B", "O", "B"]})
    (['Tom', 'met', 'Ann'], 'Person', [(0, 1), (2, 3)])
    """
    from metaie_utils.core.bio import bio_spans
    from metaie_utils.core.bio import split_instance as _split

    label_words, words, tags = _split(inst)
    return words, " ".join(label_words), bio_spans(tags)


def instance_to_example(inst: Mapping[str, Any]) -> tuple[str, str]:
    """An instance -> ``(prompt, target)`` strings.

    >>> instance_to_example({"words": ["Person", ":", "Tom", "met", "Ann"], "ner": ["O", "O", "B", "O", "B"]})
    ('Sentence: Tom met Ann\\nLabel: Person\\nSpans:', ' Tom; Ann')
    """
    words, label, spans = instance_parts(inst)
    return build_prompt(words, label), build_target([" ".join(words[s:e]) for s, e in spans])


@dataclass
class GenerativeRecipe:
    """Training hyper-parameters of the generative student (defaults: a small CPU run)."""

    epochs: float = 1.0
    lr: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = -1  # > 0 overrides epochs
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    max_length: int = 192  # prompt + target tokens; longer examples are cut from the left of the prompt; 0 = the
    # backbone's window (models.checkpoint.model_window, <= 512), as stage 05's fewshot_max_length = 0 means
    max_new_tokens: int = 24  # generation also stops at the first newline or EOS
    seed: int = 0
    save_steps: int = 200  # checkpoint every N optimizer steps (resume after a crash)
    logging_steps: int = 10
    precision: str = "auto"  # "auto" (bf16/fp16 on a GPU, fp32 on a CPU) | "fp32" | "fp16" | "bf16" (CPU: AMX/AVX512-BF16)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"


_ALIASES = {"learning_rate": "lr", "log_steps": "logging_steps", "num_epochs": "epochs", "num_train_epochs": "epochs", "per_device_batch_size": "batch_size",
            "train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum", "lr_scheduler_type": "scheduler",
            "max_seq_length": "max_length"}


def as_recipe(recipe: Any = None, **overrides: Any) -> GenerativeRecipe:
    """``None`` / a mapping / any object with matching attributes (e.g. stage 04's recipe) -> GenerativeRecipe.

    Unknown names are ignored (a token-classification recipe has fields that do not apply here); the
    common aliases ``learning_rate``, ``num_epochs``, ``gradient_accumulation_steps`` ... are mapped.

    >>> as_recipe({"learning_rate": 1e-5, "epochs": 2, "label_all_tokens": True}).lr
    1e-05
    """
    if recipe is None:
        src: dict[str, Any] = {}
    elif isinstance(recipe, GenerativeRecipe):
        src = asdict(recipe)
    elif isinstance(recipe, Mapping):
        src = dict(recipe)
    elif hasattr(recipe, "model_dump"):
        src = recipe.model_dump()
    elif hasattr(recipe, "__dataclass_fields__"):
        src = asdict(recipe)
    else:
        src = {k: getattr(recipe, k) for k in dir(recipe) if not k.startswith("_")}
    names = {f.name for f in fields(GenerativeRecipe)}
    kw: dict[str, Any] = {}
    for k, v in {**src, **overrides}.items():
        k = _ALIASES.get(k, k)
        if k in names and v is not None and not callable(v):
            kw[k] = v
    return GenerativeRecipe(**kw)


def _gguf_location(init: str) -> tuple[str, str] | None:
    """``(folder, file name)`` when ``init`` is a GGUF file or an asset alias that resolves to one."""
    p = Path(init).expanduser()
    if p.suffix == ".gguf" and p.is_file():
        return str(p.parent), p.name
    if "/" in init or p.exists():
        return None
    try:
        from metaie_utils.core.assets import ASSETS, gguf_path
    except ImportError:
        return None
    if init not in ASSETS or ASSETS[init].kind != "gguf":
        return None  # an encoder alias or a Hub name
    g = Path(gguf_path(init))  # AssetError (not installed) propagates with its install hint
    return str(g.parent), g.name


def load_backbone(init: str | os.PathLike):
    """A backbone name/path/alias -> ``(model, tokenizer, is_seq2seq)``.

    ``init``: a folder written by :func:`train_generative` or ``save_pretrained``, a Hub name
    (``HuggingFaceTB/SmolLM2-135M``, ``facebook/bart-large``), a ``.gguf`` file, or an asset alias
    with a GGUF (``smollm2-135m``). GGUF weights are dequantized to float32.
    """
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    init = str(init)
    gg = _gguf_location(init)
    try:
        if gg is not None:
            folder = dequantized_gguf(*gg)
            tok = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder)
            seq2seq = False
        else:
            init = _resolve_alias(init)
            cfg = AutoConfig.from_pretrained(init)
            seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
            tok = AutoTokenizer.from_pretrained(init)
            cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
            model = cls.from_pretrained(init)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"Cannot load the generative backbone {init!r}: {e}. Give a local folder, a .gguf file, an asset alias "
            f"(`python -m metaie_utils assets list`, e.g. smollm2-135m) or, online, a Hub name such as "
            f"HuggingFaceTB/SmolLM2-135M or facebook/bart-large."
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model, tok, seq2seq


def dequantized_gguf(folder: str, name: str) -> str:
    """A GGUF file -> a plain float32 ``save_pretrained`` folder (model + tokenizer), cached.

    transformers dequantizes GGUF weights on load but keeps the model flagged as quantized, and the
    Trainer refuses to fine-tune such a model ("purely quantized models"). The weights are copied into
    a model built from the same config without the GGUF quantization entry and saved once under
    ``<cache_dir>/dequantized/<file stem>/`` (written to a temporary folder, then renamed, so a crash
    never leaves half a model); later loads take seconds instead of dequantizing again.
    """
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metaie_utils.core.paths import cache_dir

    target = cache_dir() / "dequantized" / Path(name).stem
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gmodel = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    cfg = gmodel.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    model = AutoModelForCausalLM.from_config(cfg)
    missing, unexpected = model.load_state_dict(gmodel.state_dict(), strict=False)
    missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"Dequantizing {name}: weights do not match the architecture (missing {missing[:5]}, unexpected {unexpected[:5]}).")
    model.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return str(target)


def _resolve_alias(init: str) -> str:
    """A non-GGUF asset alias -> its local folder (through stage 04's resolver); paths and Hub names unchanged."""
    if Path(init).expanduser().exists():
        return init
    try:
        from metaie_utils.models.checkpoint import resolve_backbone
    except ImportError:
        return init
    try:
        return str(resolve_backbone(init))
    except Exception as e:  # an unknown alias is a Hub name for the assets resolver; anything else is real
        if type(e).__name__ in ("AssetError", "UserError"):
            raise FileNotFoundError(str(e)) from None
        raise


def encode_example(tok, prompt: str, target: str, seq2seq: bool, max_length: int) -> dict[str, list[int]]:
    """Token ids of one example; the loss covers only the target (prompt labels are -100).

    Causal (no BOS, as at inference): ``input_ids = prompt + target + eos``, ``labels = [-100]*len(prompt) + target + eos``;
    an over-long prompt loses tokens from its left (the sentence start), never the target.
    Seq2seq: ``input_ids = prompt``, ``labels = target + eos``.
    """
    if max_length < 2:
        raise ValueError(f"max_length = {max_length!r}: a generative example needs room for a prompt token and a "
                         f"target token; pass the token budget (train_generative turns 0 into the backbone's window).")
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    if seq2seq:
        src = tok(prompt, truncation=True, max_length=max_length)["input_ids"]
        tgt = tok(text_target=target.strip(), truncation=True, max_length=max_length)["input_ids"]
        if eos and (not tgt or tgt[-1] != eos[0]):
            tgt = tgt + eos  # BART/T5 tokenizers add it themselves; others do not
        return {"input_ids": src, "attention_mask": [1] * len(src), "labels": tgt}
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    t = tok(target, add_special_tokens=False)["input_ids"] + eos
    t = t[: max(1, max_length // 2)]
    room = max_length - len(t)
    p = p[-room:] if room > 0 else []
    ids = p + t
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(p) + t}


class _ListDataset:
    def __init__(self, rows: list[dict[str, list[int]]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    cands = [p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return str(max(cands, key=lambda p: int(p.name.split("-")[-1]))) if cands else None


def train_generative(
    train: list[dict],
    init: str | os.PathLike,
    output_dir: str | os.PathLike,
    recipe: Any = None,
    eval_instances: list[dict] | None = None,
) -> Path:
    """Train a generative student on instances (authors' format) and save it to ``output_dir``.

    ``train``: instances ``{"words", "ner"}``; ``init``: see :func:`load_backbone`; ``recipe``: a
    :class:`GenerativeRecipe`, a mapping, or stage 04's recipe object (see :func:`as_recipe`).
    Checkpoints go to ``output_dir/checkpoints`` every ``save_steps`` steps and a cut-off run resumes
    from the last one; they are removed once the model is saved. Returns ``output_dir``, which holds
    the ``save_pretrained`` model, the tokenizer, ``metaie_training.json`` (``"architecture":
    "generative"``, init, recipe, prompt version, losses) and a ``README.md`` card.

    ``[{"words": ["Person", ":", "Tom", "runs"], "ner": ["O", "O", "B", "O"]}], "smollm2-135m", "out/"``
    -> ``Path("out/")`` whose model generates " Tom" after "Sentence: Tom runs\\nLabel: Person\\nSpans:".
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    if not train:
        raise ValueError("train_generative got no training instances; check the upstream instances.json (stage 03).")
    from metaie_utils.core.device import pick_device, training_precision
    from metaie_utils.models.trainer import route_trainer_logs

    rec = as_recipe(recipe)
    # the same device and precision rules as the sequence labeler: stage 05 hands both the few-shot precision
    # it records in results.csv (bf16 autocast on a CPU with bf16 units), so the recorded recipe is the one run
    device = pick_device(rec.device)
    precision = training_precision(rec.precision, device)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(rec.seed)
    model, tok, seq2seq = load_backbone(init)
    from metaie_utils.models.checkpoint import model_window

    # 0 = the backbone's window (stage 05 hands the few-shot recipe's fewshot_max_length, 0 by default): taken
    # literally it cut every example to one target token, and the few-shot fine-tunes trained on nothing (loss 0)
    max_length = int(rec.max_length) if rec.max_length and rec.max_length > 0 else model_window(tok, model.config)
    rows = [encode_example(tok, *instance_to_example(x), seq2seq, max_length) for x in train]
    eval_rows = [encode_example(tok, *instance_to_example(x), seq2seq, max_length) for x in (eval_instances or [])]
    if not any(any(t != -100 for t in r["labels"][0 if seq2seq else 1:]) for r in rows):
        raise ValueError(f"train_generative: no training example has a target token to learn (max_length {max_length}); "
                         f"check the instances and the recipe's max_length.")
    collator = DataCollatorForSeq2Seq(tok, model=model if seq2seq else None, label_pad_token_id=-100, padding=True)
    ckpt_dir = out / "checkpoints"
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=float(rec.epochs),
        max_steps=int(rec.max_steps),
        learning_rate=float(rec.lr),
        per_device_train_batch_size=int(rec.batch_size),
        per_device_eval_batch_size=int(rec.batch_size),
        gradient_accumulation_steps=int(rec.grad_accum),
        warmup_steps=int(rec.warmup_ratio * max(1, _total_steps(len(rows), rec))),
        weight_decay=float(rec.weight_decay),
        lr_scheduler_type=rec.scheduler,
        logging_steps=int(rec.logging_steps),
        save_strategy="steps",
        save_steps=int(rec.save_steps),
        save_total_limit=1,
        eval_strategy="no",
        report_to=[],
        seed=int(rec.seed),
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=_ListDataset(rows),
                      eval_dataset=_ListDataset(eval_rows) if eval_rows else None, processing_class=tok)
    route_trainer_logs(trainer, log)  # per-step loss and lr to the run's log (the heartbeat lines show them)
    resume = _last_checkpoint(ckpt_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    info: dict[str, Any] = {
        "architecture": ARCHITECTURE,
        "seq2seq": seq2seq,
        "init": str(init),
        "recipe": asdict(rec),
        "device": device,
        "precision": precision,
        "prompt_version": PROMPT_VERSION,
        "prompt_format": build_prompt(["<sentence", "words>"], "<label>") + build_target(["<span1>", "<span2>"]),
        "train_instances": len(rows),
        "max_length": max_length,  # the token budget actually used (recipe max_length 0 = the backbone's window)
        "train_loss": float(result.training_loss),
        "loss_history": losses,
        "resumed_from": resume,
        "global_steps": int(trainer.state.global_step),
        # the same keys as stage 04's seqlabel metaie_training.json, so its notebook plots both
        "global_step": int(trainer.state.global_step),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "data": {"n_train": len(rows), "n_eval": len(eval_rows)},
        "log_history": list(trainer.state.log_history),
        "final_eval": {},
        "finished": True,
    }
    if eval_rows:
        info["final_eval"] = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
        info["eval_loss"] = info["final_eval"].get("eval_loss")
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    from metaie_utils.core.io import atomic_write_text

    atomic_write_text(out / TRAINING_FILE, json.dumps(info, indent=2, default=str) + "\n")
    (out / "README.md").write_text(_model_card(info))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return out


def _total_steps(n: int, rec: GenerativeRecipe) -> int:
    if rec.max_steps > 0:
        return rec.max_steps
    return math.ceil(math.ceil(n / rec.batch_size) / rec.grad_accum * rec.epochs)


def _model_card(info: Mapping[str, Any]) -> str:
    return (
        "# MetaIE generative student\n\n"
        f"Generates the spans of a label (architecture ablation of MetaIE). Initialized from `{info['init']}` "
        f"({'seq2seq' if info['seq2seq'] else 'causal LM'}), trained on {info['train_instances']} instances, "
        f"final training loss {info['train_loss']:.4f}.\n\n"
        "Prompt (`" + str(info["prompt_version"]) + "`):\n\n```\n" + str(info["prompt_format"]) + "\n```\n\n"
        "```python\nfrom metaie_utils.generative import GenerativeIE\n"
        "m = GenerativeIE.from_pretrained('<this folder>')\n"
        "m.extract(['Tom met Ann in Paris.'], ['Person', 'Location'])\n```\n"
    )


def _words_and_offsets(text: str | Sequence[str]) -> tuple[str, list[str], list[tuple[int, int]]]:
    """A string or a word list -> ``(text, words, char offsets)`` (:func:`metaie_utils.core.spans.to_doc`)."""
    from metaie_utils.core.spans import to_doc

    d = to_doc(text if isinstance(text, str) else [str(w) for w in text])
    return d.text, d.words, d.offsets


class GenerativeIE:
    """Extraction with a generative student: ``extract(texts, labels)`` like :class:`extraction.MetaIE`.

    >>> m = GenerativeIE.from_pretrained("outputs/04_train_meta_model/gen/model")  # doctest: +SKIP
    >>> m.extract(["Tom met Ann."], ["Person"])                                     # doctest: +SKIP
    [[Span(label='Person', text='Tom', start=0, end=3, score=0.93, word_start=0, word_end=1), ...]]
    """

    def __init__(self, model, tokenizer, seq2seq: bool = False, max_new_tokens: int = 24, batch_size: int = 16,
                 device: str = "auto"):
        self.model, self.tok, self.seq2seq = model, tokenizer, seq2seq
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        if device in ("auto", None, ""):
            from metaie_utils.core.device import pick_device

            device = pick_device("auto")
        self.device = device
        self.model.to(self.device).eval()
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kw: Any) -> "GenerativeIE":
        """Load a folder written by :func:`train_generative` (it must carry ``metaie_training.json``
        with ``"architecture": "generative"``)."""
        p = Path(path)
        info_file = p / TRAINING_FILE
        if not info_file.is_file():
            raise FileNotFoundError(f"{p} has no {TRAINING_FILE}: it is not a generative MetaIE checkpoint (train one with train_generative).")
        info = json.loads(info_file.read_text())
        if info.get("architecture") != ARCHITECTURE:
            raise ValueError(
                f"{p} holds a {info.get('architecture', 'seqlabel')!r} checkpoint, not a generative one; load it with "
                f"metaie_utils.extraction.MetaIE.from_pretrained instead."
            )
        model, tok, seq2seq = load_backbone(p)
        kw.setdefault("max_new_tokens", int(info.get("recipe", {}).get("max_new_tokens", 24)))
        return cls(model, tok, seq2seq=seq2seq, **kw)

    def _generate(self, prompts: list[str]) -> list[tuple[str, float]]:
        """Greedy continuations of ``prompts`` with their mean token probability, in batches."""
        import torch

        out: list[tuple[str, float]] = []
        self.tok.padding_side = "left"
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            tqdm = None
        starts = range(0, len(prompts), self.batch_size)
        it = tqdm(starts, desc="generate", leave=False, disable=len(prompts) <= self.batch_size) if tqdm else starts
        for i in it:
            batch = prompts[i : i + self.batch_size]
            enc = self.tok(batch, return_tensors="pt", padding=True, add_special_tokens=self.seq2seq).to(self.device)
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                          output_scores=True, return_dict_in_generate=True,
                                          pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
                                          stop_strings=["\n"], tokenizer=self.tok)  # the answer is one line
            seqs = gen.sequences if self.seq2seq else gen.sequences[:, enc["input_ids"].shape[1]:]
            if self.seq2seq:
                seqs = seqs[:, 1:]  # the decoder start token
            steps = torch.stack(gen.scores, 1).log_softmax(-1) if gen.scores else None
            for b in range(len(batch)):
                ids = seqs[b].tolist()
                n = len(ids)
                for j, t in enumerate(ids):
                    if t == self.tok.eos_token_id or (t == self.tok.pad_token_id and t != self.tok.eos_token_id):
                        n = j
                        break
                text = self.tok.decode(ids[:n], skip_special_tokens=True)
                score = 1.0
                if steps is not None and n > 0:
                    lp = steps[b, torch.arange(n), torch.tensor(ids[:n])]
                    score = float(lp.mean().exp())
                out.append((text, score))
        return out

    def extract(self, texts: Sequence[str | Sequence[str]], labels: Sequence[str] | Sequence[Sequence[str]],
                conflict: str = "confidence") -> list[list[Any]]:
        """Spans of every label in every text.

        ``texts``: strings or word lists. ``labels``: one list for all texts, or one list per text.
        Returns per text a list of ``Span(label, text, start, end, score, word_start, word_end)``
        sorted by position then label; ``start``/``end`` are character offsets in the text (for a word
        list, in the words joined by single spaces), ``score`` is the mean probability of the generated
        tokens of that (text, label) query. ``conflict``: as in ``MetaIE.extract`` (``"confidence"`` keeps,
        for a word span generated under several labels, the label with the higher score; ``"all"`` keeps
        all). A blank text gives ``[]`` without a query.
        """
        if isinstance(texts, str):
            raise TypeError("extract expects a list of texts; wrap a single text as [text].")
        per_text = _labels_per_text(labels, len(texts))
        from metaie_utils.core.spans import Span, resolve_conflicts

        prepared = [_words_and_offsets(t) for t in texts]
        queries = [(i, lab) for i, labs in enumerate(per_text) if prepared[i][1] for lab in labs]
        gens = self._generate([build_prompt(prepared[i][1], lab) for i, lab in queries]) if queries else []
        results: list[list[Any]] = [[] for _ in texts]
        for (i, lab), (gen, score) in zip(queries, gens):
            raw, words, offs = prepared[i]
            for ws, we in locate_spans(words, parse_generation(gen)):
                s, e = offs[ws][0], offs[we - 1][1]
                results[i].append(Span(label=lab, text=raw[s:e], start=s, end=e, score=score, word_start=ws, word_end=we))
        out = []
        for r in results:
            r = resolve_conflicts(r, conflict)
            out.append(sorted(r, key=lambda sp: (sp.start, sp.end, sp.label)))
        return out


def _labels_per_text(labels: Sequence[str] | Sequence[Sequence[str]], n: int) -> list[list[str]]:
    """One label list for all texts, or one list per text -> one list per text (validated)."""
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of label names, got the string {labels!r}; write [{labels!r}].")
    labels = list(labels)
    if labels and all(isinstance(x, str) for x in labels):
        return [list(labels)] * n
    if len(labels) != n or not all(isinstance(x, (list, tuple)) for x in labels):
        raise ValueError(f"labels must be one list of names for all texts or one list per text ({n} texts), got {labels!r:.200}.")
    return [list(x) for x in labels]


def is_generative_checkpoint(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a checkpoint written by :func:`train_generative`."""
    f = Path(path) / TRAINING_FILE
    try:
        return f.is_file() and json.loads(f.read_text()).get("architecture") == ARCHITECTURE
    except json.JSONDecodeError:
        return False
