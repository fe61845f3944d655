"""Stage 03 (notebook ``03_convert_bio``): its config, the run-directory outputs and the ``convert`` command.

The conversion itself (parsers, span matching, BIO instances, label statistics) is the library
:mod:`metaie_utils.llm.label_to_span`, which the NER-distillation baseline reuses without importing a stage.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import field_validator

from metaie_utils.core.params import StageConfig
from metaie_utils.core.paths import resolve
from metaie_utils.llm.label_to_span import (
    DEFAULT_FIXTURE,
    ConvertResult,
    convert_responses,
    read_responses,
)

INSTANCES_FILE = "instances.json"


HELDOUT_FILE = "heldout.json"


LABEL_STATS_FILE = "label_stats.csv"




class ConvertConfig(StageConfig):
    """Stage 03 parameters (flat; see params/defaults.yaml for the allowed values)."""

    stage: ClassVar[str] = "03_convert_bio"
    metrics_keys: ClassVar[tuple[str, ...]] = ("sentences", "instances", "train_instances", "heldout_instances",
                                               "distinct_labels")
    upstream: ClassVar[dict[str, str]] = {"input_dir": "02_distill_llm"}

    input_dir: str = DEFAULT_FIXTURE  # 02's run directory or a responses.jsonl
    parse_mode: Literal["reference", "robust"] = "robust"  # authors' parser or the robust one
    label_normalization: Literal["none", "clean", "lower"] = "clean"  # none | clean (markdown, quotes, spaces) | lower (clean + lowercase)
    min_label_freq: int = 1  # >= 0: drop labels with fewer instances (0 or 1 = keep all)
    max_labels_per_sentence: int = 0  # keep the first N labels of each sentence (0 = all)
    negatives: bool = False  # True: a label whose spans were all not found becomes an all-O instance
    heldout_fraction: float = 0.05  # [0, 0.5]: share of sentences held out (heldout.json) for span F1; 0 = none
    label_subset: Literal["all", "top_k", "ner_types"] = "all"  # label-distribution ablation
    label_top_k: int = 100  # with label_subset="top_k": keep the K most frequent labels
    max_instances: int = 0  # 0 = all; else a seeded subsample of this many instances
    max_sentences: int = 0  # 0 = all; else a seeded subsample of this many source sentences

    @field_validator("heldout_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 0.5:
            raise ValueError(f"heldout_fraction must be in [0, 0.5] (as in stage 04), got {v}; use e.g. 0.05")
        return v

    @field_validator("min_label_freq", "max_labels_per_sentence", "label_top_k", "max_instances", "max_sentences")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be >= 0 (0 = no limit), got {v}")
        return v


def write_outputs(result: ConvertResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``instances.json``, ``heldout.json`` and ``label_stats.csv`` atomically into ``out_dir``."""
    import io

    from metaie_utils.core.io import atomic_write_text
    from metaie_utils.core.runs import write_json

    d = resolve(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"instances": d / INSTANCES_FILE, "heldout": d / HELDOUT_FILE, "label_stats": d / LABEL_STATS_FILE}
    for key in ("instances", "heldout"):
        atomic_write_text(paths[key], json.dumps(getattr(result, key), ensure_ascii=False) + "\n")
    cols = ["label", "rank", "instances", "sentences", "spans", "label_words", "length_category"]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(result.label_stats)
    atomic_write_text(paths["label_stats"], buf.getvalue())
    write_json(d / "span_lengths.json", result.span_lengths)
    return paths


def convert(cfg: ConvertConfig, out_dir: str | Path, progress: bool = True) -> ConvertResult:
    """Read ``cfg.input_dir``, convert, and write the stage's files into ``out_dir`` (not metrics.json)."""
    stats: Counter = Counter()
    rows = list(read_responses(cfg.input_dir, stats))
    result = convert_responses(rows, cfg, stats, progress=progress)
    write_outputs(result, out_dir)
    return result


def _cmd_convert(args: argparse.Namespace) -> int:
    from metaie_utils.core.errors import UserError
    from metaie_utils.core.params import load_params, stage_config
    from metaie_utils.core.runs import write_json

    overrides = {}
    for pair in args.set or []:
        from metaie_utils.core.params import parse_set

        overrides.update(parse_set([pair]))
    overrides["input_dir"] = str(Path(args.input).expanduser().resolve())  # relative to the caller's cwd
    if args.parse_mode:
        overrides["parse_mode"] = args.parse_mode
    params = load_params(args.params or [], overrides)
    cfg = stage_config("03_convert_bio", params)
    out = Path(args.output).expanduser().resolve()
    if (out / INSTANCES_FILE).exists() and not args.overwrite:
        raise UserError(f"{out / INSTANCES_FILE} already exists; pass --overwrite or choose another --output.")
    result = convert(cfg, out, progress=not args.quiet)
    write_json(out / "metrics.json", result.metrics)
    print(json.dumps({k: result.metrics[k] for k in ("sentences", "instances", "train_instances",
                                                     "heldout_instances", "distinct_labels", "match_rate_verbatim")}))
    print(f"wrote {out / INSTANCES_FILE}, {out / HELDOUT_FILE}, {out / LABEL_STATS_FILE}")
    return 0


def register_cli(subparsers) -> None:
    """``convert --input DIR --output DIR``: teacher responses -> BIO instances (stage 03 without a notebook)."""
    p = subparsers.add_parser(
        "convert", help="teacher responses (responses.jsonl) -> BIO instances.json/heldout.json/label_stats.csv",
        description="Parse LLM responses into MetaIE BIO instances (the authors' JSON format).",
    )
    p.add_argument("--input", required=True, help="stage 02 run directory or a responses.jsonl file")
    p.add_argument("--output", required=True, help="output directory (created)")
    p.add_argument("--parse-mode", choices=["reference", "robust"], default=None, help="default: from params")
    p.add_argument("--params", action="append", help="params files layered over params/defaults.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_convert)
