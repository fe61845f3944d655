"""Fetch the original benchmark files from their public sources into a local data folder.

The benchmark readers never download anything: they read original files from ``paths.data_dir()``
(``$METAIE_DATA_DIR``). On a machine without the files, ``python -m metaie_utils data fetch`` downloads
each source repository's archive at the pinned commit listed in the README's data table, extracts exactly
the original files (unmodified, including members of archives inside those repositories) into the same
layout, and writes ``FETCHED.json`` with the URL and sha256 of every file. ``data check`` lists what is
present.

    python -m metaie_utils data fetch --dest ~/.cache/metaie/data   # then: export METAIE_DATA_DIR=...
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from metaie_utils.core.paths import DATA_ENV, data_dir

ARCHIVE_URL = "https://github.com/{repo}/archive/{commit}.tar.gz"


@dataclass(frozen=True)
class Source:
    """One public repository at a pinned commit and the files we take from it.

    ``files`` maps a path (or a glob) inside the repository to our path (a folder when the key is a glob);
    ``inner`` maps an archive inside the repository to {member basename: our path}.
    """

    name: str
    repo: str
    commit: str
    files: dict[str, str] = field(default_factory=dict)
    inner: dict[str, dict[str, str]] = field(default_factory=dict)


SOURCES: list[Source] = [
    Source("conll2003", "synalp/NER", "c0ea07c81ec3512b5047dcd804b0ac2b10a3bdfc", {
        "corpus/CoNLL-2003/eng.train": "conll2003/eng.train",
        "corpus/CoNLL-2003/eng.testa": "conll2003/eng.testa",
        "corpus/CoNLL-2003/eng.testb": "conll2003/eng.testb"}),
    Source("metaie_reference", "KomeijiForce/MetaIE", "53ca3cecba2f375d27f38f9a8d05790b1ec13529", {
        "dataset/test.conll2003.json": "metaie_reference/dataset/test.conll2003.json",
        "dataset/train.5-shot.conll2003.json": "metaie_reference/dataset/train.5-shot.conll2003.json",
        "distill/metaie.json": "metaie_reference/distill/metaie.json",
        "example.txt": "metaie_reference/example.txt"}),
    Source("wnut17", "leondz/emerging_entities_17", "e52a2d2a71ac1a051ca2d532eef28653c5c02603", {
        "wnut17train.conll": "wnut17/wnut17train.conll",
        "emerging.dev.conll": "wnut17/emerging.dev.conll",
        "emerging.test.annotated": "wnut17/emerging.test.annotated"}),
    Source("bc5cdr+ncbi_disease", "cambridgeltl/MTL-Bioinformatics-2016", "df0df02fae6dbb87d88ffcf323b9096528f06f84", {
        **{f"data/BC5CDR-IOB/{s}.tsv": f"bc5cdr/{s}.tsv" for s in ("train", "devel", "test")},
        **{f"data/NCBI-disease-IOB/{s}.tsv": f"ncbi_disease/{s}.tsv" for s in ("train", "devel", "test")}}),
    Source("jnlpba", "wolfe-pack/wolfe", "84fa659cb49374c99b8a7488af8adb17d5edd856", inner={
        "wolfe-examples/src/main/resources/ml/wolfe/datasets/genia/Genia4ERtraining.tar.gz": {
            "Genia4ERtask1.iob2": "jnlpba/Genia4ERtask1.iob2", "LICENSE": "jnlpba/LICENSE",
            "README.txt": "jnlpba/README.train.txt"},
        "wolfe-examples/src/main/resources/ml/wolfe/datasets/genia/Genia4ERtest.tar.gz": {
            "Genia4EReval1.iob2": "jnlpba/Genia4EReval1.iob2", "README.txt": "jnlpba/README.test.txt"}}),
    Source("conll04+ade", "Coopercoppers/PFN", "6173b3e6b048d1307766ee5d2f8178b30d6675b2", {
        **{f"data/CONLL04/{n}": f"conll04/{n}" for n in
           ("train_triples.json", "dev_triples.json", "test_triples.json", "ner2idx.json", "rel2idx.json")},
        "data/ADE/raw/ade_*.json": "ade/",
        "data/ADE/ner2idx.json": "ade/ner2idx.json", "data/ADE/rel2idx.json": "ade/rel2idx.json"}),
    Source("casie", "Ebiquity/CASIE", "2c8beef56d48e8de6599891c6a5e0e5f0d82e20c", {
        "data/annotation/*.json": "casie/annotation/"}),
    Source("aste_v2", "xuuuluuu/SemEval-Triplet-data", "d0df6600b259b6114de23cc5047c7e776cd89750", {
        f"ASTE-Data-V2-EMNLP2020/{d}/{s}_triplets.txt": f"aste_v2/{d}/{s}_triplets.txt"
        for d in ("14lap", "14res") for s in ("train", "dev", "test")}),
    Source("qasrl_gs", "plroit/qasrl-gs", "f7c64ae9b6fe48ff3910c3e59850a12ec278bf83", {
        "data/gold/*.gold.csv": "qasrl_gs/gold/", "data/sentences/*.full.csv": "qasrl_gs/sentences/"}),
    Source("up_ewt", "UniversalPropositions/UP-1.0", "b955f2aa8295834fcd0256c131de641116a8443a", {
        "UP_English-EWT/en_ewt-up-dev.conllu": "up_ewt/en_ewt-up-dev.conllu",
        "UP_English-EWT/en_ewt-up-test.conllu": "up_ewt/en_ewt-up-test.conllu"}),
    Source("semeval2010_task8", "davidsbatista/Annotated-Semantic-Relationships-Datasets",
           "ad883cbbaf4e342326b444347cf7d035012a4f4e", inner={
               "datasets/SemEval2010_task8_all_data.tar.gz": {
                   "TRAIN_FILE.TXT": "semeval2010_task8/TRAIN_FILE.TXT",
                   "TEST_FILE_FULL.TXT": "semeval2010_task8/TEST_FILE_FULL.TXT",
                   "SEMEVAL_TASK8_FULL_RELEASE_README.txt": "semeval2010_task8/SEMEVAL_TASK8_FULL_RELEASE_README.txt"}}),
]


def _targets(src: Source, member: str) -> str | None:
    """Our relative path for a repository member path, or None when we do not take it."""
    for pattern, ours in src.files.items():
        if ("*" in pattern and fnmatch.fnmatch(member, pattern)) or member == pattern:
            return ours + Path(member).name if ours.endswith("/") else ours
    return None


def _extract_inner(blob: bytes, wanted: dict[str, str], dest: Path) -> list[str]:
    got = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
        for m in tf.getmembers():
            base = Path(m.name).name
            if m.isfile() and base in wanted:
                out = dest / wanted[base]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tf.extractfile(m).read())
                got.append(wanted[base])
    return got


def fetch_source(src: Source, dest: Path, url_template: str = ARCHIVE_URL, timeout: float = 120) -> list[str]:
    """Download one source archive and extract our files into ``dest``; returns our relative paths."""
    url = url_template.format(repo=src.repo, commit=src.commit)
    with tempfile.TemporaryDirectory() as tmp:
        arch = Path(tmp) / "src.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, arch.open("wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            raise RuntimeError(f"Could not download {url} ({e}). Check the network, or copy the files by hand "
                               f"into {dest} with the layout of the README's data table.") from None
        got: list[str] = []
        with tarfile.open(arch, mode="r:*") as tf:
            for m in tf.getmembers():
                if not m.isfile():
                    continue
                inner_path = m.name.split("/", 1)[1] if "/" in m.name else m.name  # strip "<repo>-<commit>/"
                if inner_path in src.inner:
                    got += _extract_inner(tf.extractfile(m).read(), src.inner[inner_path], dest)
                    continue
                ours = _targets(src, inner_path)
                if ours:
                    out = dest / ours
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tf.extractfile(m).read())
                    got.append(ours)
    expected = [p for p in src.files if "*" not in p]
    if not got or len([g for g in got if any(g == _targets(src, e) for e in expected)]) < len(expected):
        raise RuntimeError(f"{url}: the archive did not hold every expected file of {src.name} (got {len(got)}).")
    return got


def fetch(dest: Path, names: list[str] | None = None, url_template: str = ARCHIVE_URL) -> dict[str, str]:
    """Fetch the named sources (default: all) into ``dest``; returns {relative path: sha256}."""
    dest.mkdir(parents=True, exist_ok=True)
    todo = [s for s in SOURCES if not names or s.name in names]
    unknown = set(names or []) - {s.name for s in SOURCES}
    if unknown:
        raise ValueError(f"Unknown data sources {sorted(unknown)}; known: {[s.name for s in SOURCES]}.")
    record: dict[str, str] = {}
    for src in todo:
        print(f"[data] {src.name}: {src.repo}@{src.commit[:10]}", flush=True)
        for rel in fetch_source(src, dest, url_template):
            record[rel] = hashlib.sha256((dest / rel).read_bytes()).hexdigest()
    manifest = dest / "FETCHED.json"
    old = json.loads(manifest.read_text()) if manifest.exists() else {}
    old.update(record)
    manifest.write_text(json.dumps(old, indent=1, sort_keys=True))
    return record


def check(root: Path | None = None) -> dict[str, bool]:
    """Which sources have all their fixed-name files under ``root`` (default: the data folder)."""
    root = root or data_dir(required=False)
    out = {}
    for s in SOURCES:
        fixed = [v for k, v in s.files.items() if "*" not in k] + [v for d in s.inner.values() for v in d.values()]
        globs = [v for k, v in s.files.items() if "*" in k]
        out[s.name] = all((root / f).is_file() for f in fixed) and all(any((root / g).glob("*")) for g in globs)
    return out


def _cmd_data(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        dest = Path(args.dest).expanduser().resolve() if args.dest else data_dir(required=False)
        rec = fetch(dest, args.names or None)
        print(f"{len(rec)} files in {dest}. Use them with: export {DATA_ENV}={dest}")
        return 0
    root = data_dir(required=False)
    status = check(root)
    print(f"data folder: {root} (set {DATA_ENV} to change)")
    for name, ok in status.items():
        print(f"  {name:<22} {'ok' if ok else 'MISSING'}")
    return 0 if all(status.values()) else 1


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check or fetch the original benchmark files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["check", "fetch"])
    p.add_argument("names", nargs="*", help=f"sources to fetch (default all): {', '.join(s.name for s in SOURCES)}")
    p.add_argument("--dest", help="folder to fetch into (default: the data folder)")
    p.set_defaults(func=_cmd_data)
