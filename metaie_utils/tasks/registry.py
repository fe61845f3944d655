"""Datasets of the few-shot evaluation: readers, label verbalization, queries, decoding, scoring.

>>> ds = get_dataset("conll2003")                                # doctest: +SKIP
>>> ex = ds.load("test")[0]; ds.instances(ex)[0]["words"][:3]    # doctest: +SKIP
['Organization', ':', 'SOCCER']
>>> preds = ds.predict(metaie, ds.load("test"))                  # doctest: +SKIP
>>> score(ds, [ds.gold(e) for e in ds.load("test")], preds)["entity"]["f1"]   # doctest: +SKIP

``DATASETS`` maps a name to a factory ``(**options) -> dataset``; :func:`get_dataset` calls it. Generic
entries read a user's own files (no code needed for a new dataset), e.g.::

    get_dataset("conll-bio", train="my/train.txt", test="my/test.txt", labels={"DRUG": "Drug"})
    get_dataset("spert-json", train="tr.json", test="te.json", relation_labels={"Work_For": "works for"})
    get_dataset("aste-file", task="aste", train="train_triplets.txt", test="test_triplets.txt")

The label table and every decision are in docs/TASKS.md.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metaie_utils.core.errors import UserError
from metaie_utils.core.metrics import prf
from metaie_utils.core.paths import data_dir, data_file
import metaie_utils.tasks.readers as R  # the submodule itself: `from metaie_utils.tasks import` would name the package, which imports this module
from metaie_utils.tasks.absa import ABSADataset, ASTEDataset
from metaie_utils.tasks.base import (
    Event,
    Example,
    FormatError,
    Frame,
    TaskDataset,
    label_words,
    make_instance,
    verbalize,
)
from metaie_utils.tasks.ee import EEDataset
from metaie_utils.tasks.ner import NERDataset
from metaie_utils.tasks.re import REDataset
from metaie_utils.tasks.srl import SRLDataset, propbank_role_name

__all__ = [
    "DATASETS", "get_dataset", "score", "Example", "Event", "Frame", "FormatError", "TaskDataset",
    "NERDataset", "REDataset", "EEDataset", "SRLDataset", "ABSADataset", "ASTEDataset",
    "label_words", "make_instance", "verbalize", "LABELS",
]

# ---------------------------------------------------------------------------------------------------
# Label verbalizations (docs/TASKS.md). Order matters: instances follow it.
# ---------------------------------------------------------------------------------------------------
LABELS: dict[str, dict[str, str]] = {
    # the authors' order and words (metaie_reference/dataset/test.conll2003.json)
    "conll2003": {"ORG": "Organization", "MISC": "Other entity", "PER": "Person", "LOC": "Location"},
    "wnut2017": {"person": "person", "location": "location", "group": "group", "creative-work": "creative work",
                 "corporation": "corporation", "product": "product"},
    "bc5cdr": {"Chemical": "Chemical", "Disease": "Disease"},
    "ncbi-disease": {"Disease": "Disease"},
    "jnlpba": {"protein": "Protein", "DNA": "DNA", "RNA": "RNA", "cell_line": "Cell line", "cell_type": "Cell type"},
    "conll04-entity": {"Peop": "Person", "Org": "Organization", "Loc": "Location", "Other": "Other entity"},
    "conll04-relation": {"Kill": "killed", "Live_In": "lives in", "Work_For": "works for",
                         "OrgBased_In": "is based in", "Located_In": "is located in"},
    "ade-entity": {"Drug": "Drug", "Adverse-Effect": "Adverse effect"},
    "ade-relation": {"Adverse-Effect": "is an adverse effect of"},
    "semeval2010-task8-relation": {
        "Cause-Effect": "causes", "Component-Whole": "is a component of", "Content-Container": "is contained in",
        "Entity-Destination": "is moved into", "Entity-Origin": "originates from", "Instrument-Agency": "is an instrument used by",
        "Member-Collection": "is a member of", "Message-Topic": "is about", "Product-Producer": "is a product of",
    },
    "casie-event": {"Databreach": "Data breach", "Phishing": "Phishing", "Ransom": "Ransom",
                    "DiscoverVulnerability": "Vulnerability discovery", "PatchVulnerability": "Vulnerability patch"},
}

SIGNATURES = {
    "conll04": {"Kill": ("Peop", "Peop"), "Live_In": ("Peop", "Loc"), "Work_For": ("Peop", "Org"),
                "OrgBased_In": ("Org", "Loc"), "Located_In": ("Loc", "Loc")},
    "ade": {"Adverse-Effect": ("Adverse-Effect", "Drug")},
}

# The CASIE schema: roles of each event subtype (every role annotated on that subtype in the corpus).
CASIE_ROLES = {
    "Databreach": ["Attacker", "Victim", "Compromised-Data", "Number-of-Data", "Number-of-Victim", "Tool",
                   "Attack-Pattern", "Purpose", "Damage-Amount", "Place", "Time"],
    "Phishing": ["Attacker", "Victim", "Trusted-Entity", "Tool", "Attack-Pattern", "Purpose", "Damage-Amount", "Place", "Time"],
    "Ransom": ["Attacker", "Victim", "Price", "Payment-Method", "Tool", "Attack-Pattern", "Damage-Amount", "Place", "Time"],
    "DiscoverVulnerability": ["Discoverer", "Vulnerability", "Vulnerable_System", "Vulnerable_System_Owner",
                              "Vulnerable_System_Version", "Supported_Platform", "Capabilities", "CVE", "Time"],
    "PatchVulnerability": ["Releaser", "Patch", "Patch-Number", "Vulnerability", "Issues-Addressed", "Vulnerable_System",
                           "Vulnerable_System_Version", "Supported_Platform", "CVE", "Time"],
}

# Universal PropBank roles queried by default: every role seen >= 50 times in dev+test (C-V excluded).
UP_ROLES_FREQUENT = ["ARG0", "ARG1", "ARG2", "ARG3", "ARG4", "ARGM-TMP", "ARGM-ADV", "ARGM-MOD", "ARGM-ADJ",
                     "ARGM-LOC", "ARGM-NEG", "ARGM-DIS", "ARGM-MNR", "ARGM-EXT", "ARGM-PRR", "ARGM-LVB", "ARGM-PRP",
                     "ARGM-CAU", "ARGM-DIR", "ARGM-PRD", "ARGM-GOL", "R-ARG0", "R-ARG1", "C-ARG1"]
UP_ROLES_CORE = ["ARG0", "ARG1", "ARG2", "ARG3", "ARG4", "ARG5"]


def _options_error(name: str, options: dict, allowed: Sequence[str]) -> None:
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise UserError(f"Dataset {name!r} got unknown option(s) {bad}; it accepts {sorted(allowed) or 'no options'}.")


@functools.lru_cache(maxsize=None)
def _cached(fn: Callable, *args: Any) -> list[Example]:
    """Parse a file once per process (tests and repeated get_dataset calls share it)."""
    return fn(*args)


def _fresh(fn: Callable, *args: Any) -> Callable[[], list[Example]]:
    """A zero-argument reader over the process-wide parse cache (examples are shared: do not mutate)."""
    return lambda: _cached(fn, *args)


READER_VERSION = 1  # bump when a reader's output changes: invalidates the on-disk parse cache
DISK_CACHE_ENV = "METAIE_TASKS_CACHE"


def _stat_key(arg: Any) -> Any:
    """A path argument's identity for the cache key: (path, size, mtime_ns, entries for folders)."""
    if isinstance(arg, str) and os.path.exists(arg):
        st = os.stat(arg)
        n = len(os.listdir(arg)) if os.path.isdir(arg) else 0
        return (os.path.abspath(arg), st.st_size, st.st_mtime_ns, n)
    return repr(arg)


def _disk_cached(fn: Callable, *args: Any) -> list[Example]:
    """``fn(*args)`` through a pickle in ``cache_dir()/tasks`` keyed by the function, the arguments,
    the files' size and mtime and ``READER_VERSION``; for the readers that tokenize raw text (CASIE,
    SemEval: tens of seconds). ``METAIE_TASKS_CACHE=0`` turns it off. The write is atomic."""
    if os.environ.get(DISK_CACHE_ENV, "1") == "0":
        return fn(*args)
    from metaie_utils.core.paths import cache_dir

    key = hashlib.sha1(repr((fn.__module__, fn.__qualname__, READER_VERSION, [_stat_key(a) for a in args])).encode()).hexdigest()
    folder = cache_dir() / "tasks"
    path = folder / f"{fn.__name__}-{key[:16]}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            path.unlink(missing_ok=True)  # stale or truncated: parse again
    out = fn(*args)
    folder.mkdir(parents=True, exist_ok=True)
    from metaie_utils.core.io import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


# ---------------------------------------------------------------------------------------------------
# NER
# ---------------------------------------------------------------------------------------------------
def _conll_ner(name: str, files: dict[str, tuple[str, ...]], scheme: str, labels: dict[str, str], **options) -> NERDataset:
    _options_error(name, options, [])
    readers = {split: _fresh(R.read_conll_columns, str(data_file(*parts)), f"{name}/{split}", 0, -1, scheme)
               for split, parts in files.items()}
    return NERDataset(name, readers, labels)


def conll2003(**options) -> NERDataset:
    """CoNLL-2003 English NER (IOB1 -> spans): train / dev (testa) / test (testb)."""
    return _conll_ner("conll2003", {"train": ("conll2003", "eng.train"), "dev": ("conll2003", "eng.testa"),
                                    "test": ("conll2003", "eng.testb")}, "iob1", LABELS["conll2003"], **options)


def conll2003_metaie(**options) -> NERDataset:
    """The authors' label-to-span CoNLL-2003 files: 5-shot ``train`` (20 sentences) and ``test``."""
    _options_error("conll2003-metaie", options, [])
    l2t = {v: k for k, v in LABELS["conll2003"].items()}
    files = {"train": "train.5-shot.conll2003.json", "test": "test.conll2003.json"}
    readers = {s: _fresh(R.read_label_to_span, str(data_file("metaie_reference", "dataset", f)), f"conll2003-metaie/{s}", tuple(l2t.items()))
               for s, f in files.items()}
    return NERDataset("conll2003-metaie", readers, LABELS["conll2003"])


def wnut2017(**options) -> NERDataset:
    """WNUT-2017 emerging entities (tab-only lines also separate sentences in train)."""
    return _conll_ner("wnut2017", {"train": ("wnut17", "wnut17train.conll"), "dev": ("wnut17", "emerging.dev.conll"),
                                   "test": ("wnut17", "emerging.test.annotated")}, "iob2", LABELS["wnut2017"], **options)


def bc5cdr(**options) -> NERDataset:
    """BC5CDR chemicals and diseases (IOB2)."""
    return _conll_ner("bc5cdr", {s: ("bc5cdr", f"{f}.tsv") for s, f in [("train", "train"), ("dev", "devel"), ("test", "test")]},
                      "iob2", LABELS["bc5cdr"], **options)


def ncbi_disease(**options) -> NERDataset:
    """NCBI-disease (IOB2); also the NER part of the MultiIE baseline."""
    return _conll_ner("ncbi-disease", {s: ("ncbi_disease", f"{f}.tsv") for s, f in [("train", "train"), ("dev", "devel"), ("test", "test")]},
                      "iob2", LABELS["ncbi-disease"], **options)


def jnlpba(**options) -> NERDataset:
    """JNLPBA / BioNLP-2004 (IOB2, 5 types); no official dev split."""
    return _conll_ner("jnlpba", {"train": ("jnlpba", "Genia4ERtask1.iob2"), "test": ("jnlpba", "Genia4EReval1.iob2")},
                      "iob2", LABELS["jnlpba"], **options)


def ner_mix(parts: str = "conll2003+bc5cdr+jnlpba", **options) -> NERDataset:
    """Several NER sets read as one with the union of their types (default: CoNLL-2003 + BC5CDR + JNLPBA,
    4 + 2 + 5 = 11 types): the many-type stress case of the few-shot recipe, where one query per type makes
    most instances all-O. Splits are those every part has (train, test); a sentence's gold holds only its own
    set's types (the sets' domains, news and biomedicine, overlap little).

    >>> ner_mix().labels["Chemical"], len(ner_mix().labels)                       # doctest: +SKIP
    ('Chemical', 11)
    """
    _options_error("ner-mix", options, [])
    names = [p.strip() for p in str(parts).split("+") if p.strip()]
    if len(names) < 2:
        raise UserError(f"ner-mix: parts = {parts!r}: name two or more NER datasets joined by '+', e.g. conll2003+bc5cdr.")
    dss = []
    for n in names:
        key = ALIASES.get(n, n)
        if key not in DATASETS:
            raise UserError(f"ner-mix: unknown part {n!r}; known NER datasets: "
                            f"{', '.join(k for k in DATASETS if k in LABELS)}.")
        ds = DATASETS[key]()
        if not isinstance(ds, NERDataset):
            raise UserError(f"ner-mix: part {n!r} is a {ds.task} dataset; only NER datasets can be mixed.")
        dss.append(ds)
    labels: dict[str, str] = {}
    for ds in dss:
        for raw, word in ds.labels.items():
            if raw in labels or word in labels.values():
                raise UserError(f"ner-mix: type {raw!r} ({word!r}) of {ds.name} is also in an earlier part; mix sets with distinct types.")
            labels[raw] = word
    splits = [s for s in ("train", "dev", "test") if all(s in ds.splits for ds in dss)]
    readers = {s: (lambda s=s: [ex for ds in dss for ex in ds.load(s)]) for s in splits}
    return NERDataset("ner-mix" if parts == "conll2003+bc5cdr+jnlpba" else f"ner-mix:{parts}", readers, labels)


def conll_bio(train: str | None = None, dev: str | None = None, test: str | None = None, labels: dict[str, str] | None = None,
              name: str = "conll-bio", scheme: str = "iob2", token_col: int = 0, tag_col: int = -1, **options) -> NERDataset:
    """A user's CoNLL-column BIO files (any of train/dev/test paths). ``labels``: raw type -> label words
    (default: :func:`verbalize` of each type found in the files, in sorted order)."""
    _options_error(name, options, [])
    files = {s: p for s, p in (("train", train), ("dev", dev), ("test", test)) if p}
    if not files:
        raise UserError("conll-bio needs at least one of train=, dev=, test= (paths to CoNLL BIO files).")
    readers = {s: _fresh(R.read_conll_columns, str(Path(p).expanduser()), f"{name}/{s}", token_col, tag_col, scheme) for s, p in files.items()}
    if labels is None:
        raw = sorted({t for r in readers.values() for ex in r() for *_, t in ex.entities})
        labels = {t: verbalize(t) for t in raw}
    return NERDataset(name, readers, labels)


# ---------------------------------------------------------------------------------------------------
# RE
# ---------------------------------------------------------------------------------------------------
def conll04(**options) -> REDataset:
    """CoNLL-2004 entities and relations (SpERT split)."""
    _options_error("conll04", options, [])
    readers = {s: _fresh(R.read_spert_json, str(data_file("conll04", f"{s}_triples.json")), f"conll04/{s}") for s in ("train", "dev", "test")}
    return REDataset("conll04", readers, LABELS["conll04-entity"], LABELS["conll04-relation"], SIGNATURES["conll04"])


def ade(fold: int = 0, **options) -> REDataset:
    """ADE (SpERT 10-fold): ``fold`` 0..9 selects ``ade_split_{fold}_{train,test}.json``; ``full`` is all 4,272."""
    _options_error("ade", options, [])
    if fold not in range(10):
        raise UserError(f"ade fold={fold!r}; use an integer 0..9 (the 10 SpERT folds).")
    readers = {s: _fresh(R.read_spert_json, str(data_file("ade", f"ade_split_{fold}_{s}.json")), f"ade{fold}/{s}") for s in ("train", "test")}
    readers["full"] = _fresh(R.read_spert_json, str(data_file("ade", "ade_full.json")), "ade/full")
    return REDataset(f"ade-fold{fold}" if fold else "ade", readers, LABELS["ade-entity"], LABELS["ade-relation"], SIGNATURES["ade"])


def semeval2010_task8(**options) -> REDataset:
    """SemEval-2010 Task 8 as ``<nominal> <relation phrase>`` -> other nominal queries (no entity stage)."""
    _options_error("semeval2010-task8", options, [])
    files = {"train": "TRAIN_FILE.TXT", "test": "TEST_FILE_FULL.TXT"}
    readers = {s: _fresh(_disk_cached, R.read_semeval2010_task8, str(data_file("semeval2010_task8", f)), f"semeval2010-task8/{s}")
               for s, f in files.items()}
    return REDataset("semeval2010-task8", readers, {"Nominal": "Nominal"}, LABELS["semeval2010-task8-relation"], None, entity_stage=False)


def spert_json(train: str | None = None, dev: str | None = None, test: str | None = None,
               entity_labels: dict[str, str] | None = None, relation_labels: dict[str, str] | None = None,
               signatures: dict[str, tuple[str, str]] | None = None, name: str = "spert-json", **options) -> REDataset:
    """A user's SpERT JSON files. Labels default to :func:`verbalize` of the types found (relation phrase
    = the verbalized relation name, lower case)."""
    _options_error(name, options, [])
    files = {s: p for s, p in (("train", train), ("dev", dev), ("test", test)) if p}
    if not files:
        raise UserError("spert-json needs at least one of train=, dev=, test= (paths to SpERT JSON files).")
    readers = {s: _fresh(R.read_spert_json, str(Path(p).expanduser()), f"{name}/{s}") for s, p in files.items()}
    exs = [ex for r in readers.values() for ex in r()]
    if entity_labels is None:
        entity_labels = {t: verbalize(t) for t in sorted({e[2] for ex in exs for e in ex.entities})}
    if relation_labels is None:
        relation_labels = {t: verbalize(t).lower() for t in sorted({r[6] for ex in exs for r in ex.relations})}
    return REDataset(name, readers, entity_labels, relation_labels, signatures)


# ---------------------------------------------------------------------------------------------------
# EE
# ---------------------------------------------------------------------------------------------------
CASIE_EXCLUDED = ("10001", "10002", "999")


def _read_casie_split(root: str, split: str) -> list[Example]:
    """CASIE with the UIE recipe: drop docs 10001, 10002, 999; sort by (date, id) descending; test = first
    200 docs, dev = next 100, train = the rest. Examples are the sentences of those documents."""
    import json

    from tqdm.auto import tqdm

    paths = sorted(glob.glob(str(Path(root) / "*.json")))
    if not paths:
        raise UserError(f"No CASIE annotation files (*.json) in {root}.")
    keyed = []
    for p in paths:
        stem = Path(p).stem
        if stem in CASIE_EXCLUDED:
            continue
        with open(p, encoding="utf-8") as f:
            try:
                date = json.load(f)["info"]["date"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise FormatError(p, None, "no info.date", "a CASIE annotation document") from None
        keyed.append((date, stem, p))
    keyed.sort(reverse=True)
    ranges = {"test": (0, 200), "dev": (200, 300), "train": (300, len(keyed))}
    a, b = ranges[split]
    out: list[Example] = []
    for _, stem, p in tqdm(keyed[a:b], desc=f"casie {split}", unit="doc", leave=False):
        exs, _ = R.read_casie_doc(p, f"casie/{split}/{stem}")
        out.extend(ex for ex in exs if ex.tokens)
    return out


def casie(events: str = "untyped", **options) -> EEDataset:
    """CASIE cybersecurity events, sentence level, UIE document split (train also serves MultiIE).

    ``events``: ``"untyped"`` (default, the paper's protocol: ``Event trigger`` and ``Argument for Trigger
    "x"`` queries, scored as unlabeled triggers T and trigger-argument pairs A) or ``"typed"`` (per event
    type and role, adding Trig-C / Arg-C); as a spec, ``casie:events=typed``."""
    _options_error("casie", options, [])
    if events not in ("untyped", "typed"):
        raise UserError(f"casie: events={events!r}; use 'untyped' (the paper's T / A) or 'typed'.")
    root = str(data_dir() / "casie" / "annotation")
    readers = {s: _fresh(_disk_cached, _read_casie_split, root, s) for s in ("train", "dev", "test")}
    roles = sorted({r for rs in CASIE_ROLES.values() for r in rs})
    name = "casie" if events == "untyped" else "casie-typed"
    return EEDataset(name, readers, LABELS["casie-event"], {r: verbalize(r) for r in roles}, CASIE_ROLES,
                     typed=events == "typed")


# ---------------------------------------------------------------------------------------------------
# SRL
# ---------------------------------------------------------------------------------------------------
def up_ewt(roles: str | Sequence[str] = "frequent", **options) -> SRLDataset:
    """Universal PropBank EWT (dev, test). ``roles``: "frequent" (24 roles seen >= 50 times), "core"
    (ARG0-ARG5) or an explicit list of PropBank role names."""
    _options_error("up-ewt", options, [])
    if isinstance(roles, str):
        if roles not in ("frequent", "core"):
            raise UserError(f"up-ewt roles={roles!r}; use 'frequent', 'core' or a list such as ['ARG0', 'ARG1'].")
        roles = UP_ROLES_FREQUENT if roles == "frequent" else UP_ROLES_CORE
    readers = {s: _fresh(R.read_conllu_srl, str(data_file("up_ewt", f"en_ewt-up-{s}.conllu")), f"up-ewt/{s}") for s in ("dev", "test")}
    return SRLDataset("up-ewt", readers, {r: propbank_role_name(r) for r in roles})


def _read_qasrl(domains: tuple[str, ...], split: str) -> list[Example]:
    out: list[Example] = []
    for d in domains:
        out += R.read_qasrl_gold(data_file("qasrl_gs", "gold", f"{d}.{split}.gold.csv"),
                                 data_file("qasrl_gs", "sentences", f"{d}.{split}.full.csv"), f"qasrl-gs/{split}")
    return out


def qasrl_gs(domain: str = "all", **options) -> SRLDataset:
    """QA-SRL Gold Standard (dev, test); the question is the label. ``domain``: all|wikinews|wikipedia."""
    _options_error("qasrl-gs", options, [])
    domains = {"all": ("wikinews", "wikipedia"), "wikinews": ("wikinews",), "wikipedia": ("wikipedia",)}
    if domain not in domains:
        raise UserError(f"qasrl-gs domain={domain!r}; use one of {sorted(domains)}.")
    readers = {s: _fresh(_read_qasrl, domains[domain], s) for s in ("dev", "test")}
    return SRLDataset("qasrl-gs" if domain == "all" else f"qasrl-gs-{domain}", readers, None)


# ---------------------------------------------------------------------------------------------------
# ABSA / ASTE
# ---------------------------------------------------------------------------------------------------
def _aste_family(task: str, subset: str, **options):
    name = f"{task}-{subset}"
    _options_error(name, options, [])
    readers = {s: _fresh(R.read_aste, str(data_file("aste_v2", subset, f"{s}_triplets.txt")), f"{name}/{s}") for s in ("train", "dev", "test")}
    return (ABSADataset if task == "absa" else ASTEDataset)(name, readers)


def aste_file(task: str = "aste", train: str | None = None, dev: str | None = None, test: str | None = None,
              name: str | None = None, **options):
    """A user's ASTE-V2 style files for ``task`` "absa" or "aste"."""
    if task not in ("absa", "aste"):
        raise UserError(f"aste-file task={task!r}; use 'absa' or 'aste'.")
    name = name or f"{task}-file"
    _options_error(name, options, [])
    files = {s: p for s, p in (("train", train), ("dev", dev), ("test", test)) if p}
    if not files:
        raise UserError("aste-file needs at least one of train=, dev=, test= (paths to ASTE triplet files).")
    readers = {s: _fresh(R.read_aste, str(Path(p).expanduser()), f"{name}/{s}") for s, p in files.items()}
    return (ABSADataset if task == "absa" else ASTEDataset)(name, readers)


DATASETS: dict[str, Callable[..., TaskDataset]] = {
    "conll2003": conll2003,
    "conll2003-metaie": conll2003_metaie,
    "wnut2017": wnut2017,
    "bc5cdr": bc5cdr,
    "ncbi-disease": ncbi_disease,
    "jnlpba": jnlpba,
    "ner-mix": ner_mix,
    "conll04": conll04,
    "ade": ade,
    "semeval2010-task8": semeval2010_task8,
    "casie": casie,
    "up-ewt": up_ewt,
    "qasrl-gs": qasrl_gs,
    "absa-14lap": functools.partial(_aste_family, "absa", "14lap"),
    "absa-14res": functools.partial(_aste_family, "absa", "14res"),
    "aste-14lap": functools.partial(_aste_family, "aste", "14lap"),
    "aste-14res": functools.partial(_aste_family, "aste", "14res"),
    # generic readers of a user's own files
    "conll-bio": conll_bio,
    "spert-json": spert_json,
    "aste-file": aste_file,
}
GENERIC_READERS = ("conll-bio", "spert-json", "aste-file")  # kinds that read a user's own files
ALIASES = {"bionlp2004": "jnlpba", "wnut17": "wnut2017", "ncbi_disease": "ncbi-disease", "semeval2010_task8": "semeval2010-task8",
           "up_ewt": "up-ewt", "qasrl": "qasrl-gs", "14lap": "aste-14lap", "14res": "aste-14res"}


def score(dataset: TaskDataset, gold_list: Sequence[dict[str, set[tuple]]], pred_list: Sequence[dict[str, set[tuple]]]) -> dict[str, dict]:
    """Micro P/R/F1 (offset-exact) per sub-task: ``{subtask: prf-dict}`` over ``dataset.subtasks``, then any
    ``<subtask>@gold`` keys of the gold dicts (stage 2 on gold anchors, added by the few-shot loop).

    >>> from metaie_utils.tasks import get_dataset
    >>> ds = get_dataset("conll2003")
    >>> score(ds, [{"entity": {(0, 1, "PER")}}], [{"entity": {(0, 1, "PER"), (2, 3, "LOC")}}])["entity"]["precision"]
    0.5
    """
    if len(gold_list) != len(pred_list):
        raise ValueError(f"score got {len(gold_list)} gold and {len(pred_list)} predicted examples; pass one dict per example to both.")
    keys = list(dataset.subtasks) or sorted({k for g in gold_list for k in g if "@" not in k})
    keys += sorted({k for g in gold_list for k in g if "@" in k and k not in keys})  # <subtask>@gold rows
    return {k: prf([g.get(k, set()) for g in gold_list], [p.get(k, set()) for p in pred_list]) for k in keys}


# Datasets whose support set is fixed (the whole train split, the same for every seed) instead of sampled:
# name -> the tasks dataset it reads. conll2003-metaie's train split is the authors' 5-shot file
# (metaie_reference/dataset/train.5-shot.conll2003.json, 20 sentences) and its test split their test file.
FIXED_SUPPORT: dict[str, str] = {"conll2003-authors": "conll2003-metaie", "conll2003-metaie": "conll2003-metaie"}
