"""Dataset spec strings: a user's own files wherever a dataset name is accepted, with no code.

A *spec* names a dataset kind and its options in one string::

    conll-bio:train=my/train.txt,test=my/test.txt,tag_col=0,token_col=1
    spert-json:train=data/tr.json,test=data/te.json,relation_labels=Work_For:works for;Kill:killed
    aste-file:task=aste,train=train_triplets.txt,test=test_triplets.txt
    ade:fold=3                       # a registered dataset with options also works

It is accepted by ``python -m metaie_utils evaluate --dataset SPEC`` / ``finetune --dataset SPEC``, in the
``datasets:`` list of params files and the notebooks' ``datasets`` parameter, and by
:func:`metaie_utils.tasks.get_dataset`. A registered dataset name (``conll2003``, ``wnut17``, ...) is not
a spec and keeps its meaning.

Grammar
-------
::

    spec    := KIND ":" [ item ( "," item )* [","] ]
    item    := KEY "=" value
    value   := bare | '"' any-but-'"' '"' | "'" any-but-"'" "'"
    bare    := any characters but "," (surrounding blanks are stripped)

- ``KIND``: a name of ``tasks.DATASETS`` or an alias (the generic readers ``conll-bio``, ``spert-json``,
  ``aste-file``; any registered dataset that takes options, e.g. ``ade:fold=3``, ``up-ewt:roles=core``).
- ``KEY``: a keyword option of that kind (:func:`kind_keys`); unknown keys and kinds are errors that
  suggest the closest one. Each key at most once.
- **Commas in a value** (a path such as ``my,data/train.txt``) need quotes: ``train="my,data/train.txt"``.
  Quotes also keep leading/trailing blanks. There is no escape character: a value holding a ``"`` is
  written in ``'...'`` and vice versa. An unquoted path holding ``=`` is refused (it is almost always a
  missing comma, ``train=a.txt;test=b.txt``); quote it when the ``=`` is real.
- Typed values: ``token_col``, ``tag_col``, ``fold``: integers (negative counts from the last column);
  ``scheme``: ``iob1|iob2``; ``task``: ``absa|aste``; label tables ``labels``, ``entity_labels``,
  ``relation_labels``: ``RAW:words;RAW:words`` (order kept: queries follow it; split at ``;`` and the
  first ``:``); ``signatures``: ``REL:HEAD>TAIL;...``; ``roles``: ``frequent``, ``core`` or ``ARG0;ARG1``.
  Everything else is a string.
- Paths (``train``, ``dev``, ``test``): ``~`` expands; a relative path is looked up in the current folder,
  then the repository root, then the benchmark data folder (``METAIE_DATA_DIR``). Files are UTF-8.
- In YAML, write a spec as a block list item (``- conll-bio:train=a.txt,test=b.txt``) or quote it: in a
  flow list (``[a, b]``) YAML itself splits at the commas.

:func:`load_spec` checks the files before training starts: a missing file, a file that is not UTF-8, an
unparsable line (``file, line N``), a tag column that holds no BIO tags (with the column that looks
like one) and a file with no annotations are each one :class:`SpecError` naming the file.

>>> parse_spec("conll-bio:train=a.txt,tag_col=0,labels=DRUG:Drug;DIS:Disease")
('conll-bio', {'train': 'a.txt', 'tag_col': 0, 'labels': {'DRUG': 'Drug', 'DIS': 'Disease'}})
>>> parse_spec('aste-file:train="my,dir/t.txt"')
('aste-file', {'train': 'my,dir/t.txt'})
>>> format_spec(*parse_spec('aste-file:train="my,dir/t.txt"'))
'aste-file:train="my,dir/t.txt"'
>>> is_spec("conll2003"), is_spec("conll-bio:train=a.txt")
(False, True)
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import re
from pathlib import Path
from typing import Any

from metaie_utils.core.errors import UserError

__all__ = ["SpecError", "is_spec", "parse_spec", "format_spec", "load_spec", "kind_keys", "spec_slug",
           "check_dataset_arg", "PATH_KEYS", "FILE_KINDS"]

PATH_KEYS = ("train", "dev", "test")
FILE_KINDS = ("conll-bio", "spert-json", "aste-file")  # the generic readers of a user's own files
MAP_KEYS = ("labels", "entity_labels", "relation_labels")
INT_KEYS = ("token_col", "tag_col", "fold")
CHOICES = {"scheme": ("iob1", "iob2"), "task": ("absa", "aste")}
GRAMMAR = "KIND:key=value,key=value,... (quote a value holding a comma: train=\"a,b.txt\"; see metaie_utils/tasks/spec.py)"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_BIO = re.compile(r"^(O|[BI]-\S+)$")


class SpecError(UserError, ValueError):
    """A dataset spec that cannot be used; the message names the spec part (or the file and line) and the fix.

    A ``ValueError`` too, so a pydantic validator turns it into a params error."""


def _registry() -> tuple[dict, dict]:
    from metaie_utils.tasks.registry import ALIASES, DATASETS

    return DATASETS, ALIASES


def _registered_names() -> set[str]:
    datasets, aliases = _registry()
    names = set(datasets) | set(aliases)
    try:
        from metaie_utils.tasks.registry import FIXED_SUPPORT

        names |= set(FIXED_SUPPORT)
    except ImportError:  # pragma: no cover - fewshot not in this checkout
        pass
    return names


def is_spec(s: Any) -> bool:
    """Whether ``s`` is meant as a spec (a string holding ``:`` or ``=`` that is not a registered name).

    A malformed spec is still a spec (``parse_spec`` then says what is wrong); a plain unknown name such
    as ``conll2033`` is not (``get_dataset`` lists the known names for it).
    """
    return isinstance(s, str) and s.strip() not in _registered_names() and (":" in s or "=" in s)


def _close(word: str, options, what: str) -> str:
    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if not m:  # "tag-col" vs "tag_col", "Conll_Bio" vs "conll-bio"
        norm = {re.sub(r"[-_ ]", "", o.lower()): o for o in options}
        k = re.sub(r"[-_ ]", "", word.lower())
        m = [norm[k]] if k in norm else []
    return f" Did you mean {what} {m[0]!r}?" if m else ""


def _fail(spec: str, msg: str) -> SpecError:
    return SpecError(f"Dataset spec {spec!r}: {msg}")


def _kinds() -> list[str]:
    datasets, _ = _registry()
    return list(datasets)


def kind_keys(kind: str) -> list[str]:
    """The option keys of ``kind`` (its factory's keyword parameters, in signature order).

    >>> kind_keys("conll-bio")
    ['train', 'dev', 'test', 'labels', 'name', 'scheme', 'token_col', 'tag_col']
    """
    datasets, aliases = _registry()
    fn = datasets[aliases.get(kind, kind)]
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _split_items(spec: str, body: str) -> list[tuple[str, str, bool]]:
    """``k=v,k="v,w"`` -> [(key, raw value, quoted)], with errors pointing at the offending part."""
    items: list[tuple[str, str, bool]] = []
    i, n = 0, len(body)
    while i < n:
        j = body.find("=", i)
        comma = body.find(",", i)
        if j < 0 or (0 <= comma < j):
            part = body[i:comma if comma >= 0 else n].strip()
            if not part and comma >= 0:
                raise _fail(spec, f"empty item at character {len(spec) - len(body) + i + 1} (two commas in a row?). "
                                  f"Write {GRAMMAR}.")
            if not part:
                break
            hint = ""
            if ":" in part:
                k, _, v = part.partition(":")
                hint = f" Write {k.strip()}={v.strip()} (key=value)."
            raise _fail(spec, f"item {part!r} has no '='.{hint} Grammar: {GRAMMAR}.")
        key = body[i:j].strip()
        if not _KEY.match(key):
            raise _fail(spec, f"{key!r} is not an option key (letters, digits, '_'). Grammar: {GRAMMAR}.")
        k = j + 1
        while k < n and body[k] in " \t":
            k += 1
        if k < n and body[k] in "\"'":
            q = body[k]
            end = body.find(q, k + 1)
            if end < 0:
                raise _fail(spec, f"the value of {key}= opens a {q} quote that is never closed.")
            value, rest = body[k + 1:end], end + 1
            while rest < n and body[rest] in " \t":
                rest += 1
            if rest < n and body[rest] != ",":
                raise _fail(spec, f"after the quoted value of {key}= comes {body[rest:rest + 20]!r}; a ',' must follow a "
                                  f"closing quote.")
            items.append((key, value, True))
            i = rest + 1
        else:
            end = body.find(",", k)
            end = n if end < 0 else end
            items.append((key, body[k:end].strip(), False))
            i = end + 1
    return items


def _typed(spec: str, kind: str, key: str, raw: str, quoted: bool) -> Any:
    if key in INT_KEYS:
        try:
            return int(raw)
        except ValueError:
            raise _fail(spec, f"{key}={raw!r} is not an integer (columns count from 0; -1 = the last).") from None
    if key in CHOICES:
        if raw not in CHOICES[key]:
            raise _fail(spec, f"{key}={raw!r}; use one of {list(CHOICES[key])}.{_close(raw, CHOICES[key], 'value')}")
        return raw
    if key in MAP_KEYS or key == "signatures":
        out: dict[str, Any] = {}
        for entry in [e.strip() for e in raw.split(";") if e.strip()]:
            a, sep, b = entry.partition(":")
            a, b = a.strip(), b.strip()
            if not sep or not a or not b:
                want = "REL:HEAD>TAIL" if key == "signatures" else "RAW:label words"
                raise _fail(spec, f"{key}= entry {entry!r} is not {want}; separate entries with ';', e.g. "
                                  f"{key}={'Work_For:Peop>Org' if key == 'signatures' else 'DRUG:Drug;DIS:Disease'}.")
            if key == "signatures":
                h, arrow, t = b.partition(">")
                if not arrow or not h.strip() or not t.strip():
                    raise _fail(spec, f"signatures= entry {entry!r} is not REL:HEAD>TAIL (e.g. Work_For:Peop>Org).")
                out[a] = (h.strip(), t.strip())
            else:
                out[a] = b
        if not out:
            raise _fail(spec, f"{key}= is empty; write e.g. {key}=DRUG:Drug;DIS:Disease or leave the key out.")
        return out
    if key == "roles":
        return raw if raw in ("frequent", "core") else [r.strip() for r in raw.split(";") if r.strip()]
    if key in PATH_KEYS:
        if not raw:
            raise _fail(spec, f"{key}= is empty; give a path or leave the key out.")
        if not quoted:
            m = re.search(r"[;\s]\s*([A-Za-z_]+)\s*=", raw) or re.search(r"([A-Za-z_]+)\s*=", raw)
            if m or "=" in raw:
                got = f" ({m.group(1)!r} looks like a key)" if m else ""
                raise _fail(spec, f"the path {key}={raw!r} holds '='{got}: separate items with ',' "
                                  f"(train=a.txt,test=b.txt), or quote a path that really holds '=' ({key}=\"{raw}\").")
    return raw


def parse_spec(s: str) -> tuple[str, dict[str, Any]]:
    """``"KIND:key=value,..."`` -> ``(kind, options)`` with typed values (see the module docstring).

    The kind is returned as written when it is an alias (``get_dataset`` resolves aliases).

    >>> parse_spec("conll-bio:tran=a.txt")
    Traceback (most recent call last):
    ...
    metaie_utils.tasks.spec.SpecError: Dataset spec 'conll-bio:tran=a.txt': unknown key 'tran' for conll-bio. Did you mean key 'train'? conll-bio accepts: train, dev, test, labels, name, scheme, token_col, tag_col.
    """
    if not isinstance(s, str):
        raise SpecError(f"A dataset spec must be a string, got {type(s).__name__} {s!r}.")
    spec = s.strip()
    kind, colon, body = spec.partition(":")
    kind = kind.strip()
    datasets, aliases = _registry()
    if not colon:
        if "=" in spec:
            guess = spec.split("=", 1)[0].strip()
            head = guess.split(",")[0].split()[0] if guess.split() else guess
            raise _fail(spec, f"no ':' after the kind. Write KIND:key=value,... e.g. conll-bio:train=my/train.txt "
                              f"(got {head!r} where a kind such as {', '.join(FILE_KINDS)} goes).")
        raise _fail(spec, f"not a spec: write {GRAMMAR}.")
    if kind not in datasets and kind not in aliases:
        if "=" in kind or "/" in kind:
            raise _fail(spec, f"starts with {kind!r}, not a dataset kind; a spec starts with the kind: "
                              f"{', '.join(FILE_KINDS)}:key=value,...")
        raise _fail(spec, f"unknown kind {kind!r}.{_close(kind, list(datasets) + list(aliases), 'kind')} Kinds: "
                          f"{', '.join(datasets)} (aliases: {', '.join(aliases)}); your own files: {', '.join(FILE_KINDS)}.")
    allowed = kind_keys(kind)
    options: dict[str, Any] = {}
    for key, raw, quoted in _split_items(spec, body):
        if key not in allowed:
            known = f"{kind} accepts: {', '.join(allowed)}." if allowed else f"{kind} takes no options."
            raise _fail(spec, f"unknown key {key!r} for {kind}.{_close(key, allowed, 'key')} {known}")
        if key in options:
            raise _fail(spec, f"key {key!r} is given twice.")
        options[key] = _typed(spec, kind, key, raw, quoted)
    base = aliases.get(kind, kind)
    if base in FILE_KINDS and not any(k in options for k in PATH_KEYS):
        raise _fail(spec, f"{kind} needs at least one of train=, dev=, test= (paths to your files), e.g. "
                          f"{kind}:train=my/train.txt,test=my/test.txt.")
    return kind, options


def _format_value(key: str, v: Any) -> str:
    if isinstance(v, dict):
        v = ";".join(f"{a}:{b[0]}>{b[1]}" if isinstance(b, tuple) else f"{a}:{b}" for a, b in v.items())
    elif isinstance(v, (list, tuple)):
        v = ";".join(str(x) for x in v)
    v = str(v)
    if "," in v or v != v.strip() or (key in PATH_KEYS and "=" in v) or v[:1] in ("'", '"'):
        q = "'" if '"' in v else '"'
        if q in v:
            raise SpecError(f"The value {v!r} of {key}= holds both quote characters and a comma; it cannot be written in a spec.")
        return f"{q}{v}{q}"
    return v


def format_spec(kind: str, options: dict[str, Any]) -> str:
    """The inverse of :func:`parse_spec`: ``parse_spec(format_spec(k, o)) == (k, o)``.

    >>> format_spec("conll-bio", {"train": "a.txt", "tag_col": 0, "labels": {"DRUG": "Drug"}})
    'conll-bio:train=a.txt,tag_col=0,labels=DRUG:Drug'
    """
    return f"{kind}:" + ",".join(f"{k}={_format_value(k, v)}" for k, v in options.items())


def spec_slug(s: str) -> str:
    """A file-name-safe stand-in for a dataset argument (run folders: ``support/<slug>/``, ``work/<slug>/``).

    A registered name is returned unchanged (existing runs resume); a spec becomes
    ``<kind or name>-<8 hex of its canonical form>``.

    >>> spec_slug("conll2003")
    'conll2003'
    >>> spec_slug("conll-bio:train=a.txt") == spec_slug("conll-bio: train = a.txt")
    True
    """
    if not is_spec(s):
        return s
    kind, opts = parse_spec(s)
    head = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(opts.get("name") or kind)).strip("-") or "dataset"
    return f"{head}-{hashlib.sha1(format_spec(kind, opts).encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------------ loading
def _find(spec: str, key: str, raw: str) -> Path:
    from metaie_utils.core.paths import data_dir, resolve

    p = Path(raw).expanduser()
    cands = [p] if p.is_absolute() else [Path.cwd() / p, resolve(p)]
    if not p.is_absolute():
        d = data_dir(required=False)
        cands.append(d / p)
    seen: list[Path] = []
    for c in cands:
        if c not in seen:
            seen.append(c)
    for c in seen:
        if c.is_file():
            return c.resolve()
        if c.is_dir():
            raise _fail(spec, f"{key}={raw!r} is the folder {c}; give the file itself (e.g. {key}={Path(raw) / 'train.txt'}).")
    raise _fail(spec, f"file {raw!r} ({key}=) does not exist (looked at {', '.join(str(c) for c in seen)}).")


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {col}). Save the "
                        f"file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}.") from None
    if not data.strip():
        raise SpecError(f"{path}: the file is empty.")


def _tag_col_hint(path: Path, line: int, opts: dict[str, Any]) -> str:
    """For a conll-bio tag column error: which column of that line looks like BIO tags."""
    try:
        with open(path, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                if n == line:
                    cols = text.split()
                    break
            else:
                return ""
    except OSError:  # pragma: no cover
        return ""
    tag_col, token_col = opts.get("tag_col", -1), opts.get("token_col", 0)
    picked = tag_col % len(cols) if cols else tag_col
    good = [i for i, c in enumerate(cols) if _BIO.match(c) and i != picked]
    where = f"tag_col={tag_col} picks column {picked} (0-based) of the {len(cols)} on this line"
    if not good:
        fix = "; no column of this line holds O/B-<type>/I-<type> tags: is this a CoNLL BIO file?"
    elif good[-1] == token_col % max(len(cols), 1):
        fix = f"; the BIO tags look like column {good[-1]}, which is token_col: swap them (tag_col={good[-1]},token_col={picked})"
    else:
        fix = f"; the BIO tags look like column {good[-1]}: set tag_col={good[-1]}"
    return f" [{where}{fix}]"


def _annotations(task: str, ex: Any) -> int:
    if task == "ner":
        return len(ex.entities)
    if task == "re":
        return len(ex.entities) + len(ex.relations)
    if task in ("absa", "aste"):
        return len(ex.triplets)
    if task == "ee":
        return len(ex.events)
    if task == "srl":
        return len(ex.frames)
    return 1


_WHAT = {"ner": "entities (every tag is O)", "re": "entities or relations", "absa": "triplets (every line ends in ####[])",
         "aste": "triplets (every line ends in ####[])", "ee": "events", "srl": "frames"}


def load_spec(s: str) -> Any:
    """The dataset of a spec: the same object ``get_dataset(kind, **options)`` returns, after checking
    every file it names (exists, UTF-8, parses, holds annotations). Errors are :class:`SpecError` /
    ``FormatError`` (both ``UserError``) naming the spec key, the file and, where there is one, the line.
    """
    from metaie_utils.tasks.base import FormatError

    kind, opts = parse_spec(s)
    datasets, aliases = _registry()
    base = aliases.get(kind, kind)
    files: dict[str, Path] = {}
    for key in PATH_KEYS:
        if key in opts:
            files[key] = _find(s, key, opts[key])
            _check_utf8(files[key])
    built = {**opts, **{k: str(p) for k, p in files.items()}}
    try:
        ds = datasets[base](**built)
        readers = getattr(ds, "readers", {})
        for split, path in files.items():
            exs = readers[split]() if split in readers else ds.load(split)
            if not exs:
                raise SpecError(f"{path} ({split}=): no sentences were read from it. Check that it is a "
                                f"{base} file ({GRAMMAR}).")
            if not any(_annotations(ds.task, ex) for ex in exs):
                raise SpecError(f"{path} ({split}=): the file has no {_WHAT.get(ds.task, 'annotations')} in its "
                                f"{len(exs)} sentence(s); nothing to train on or score."
                                + (f" Is tag_col={opts.get('tag_col', -1)} the tag column?" if base == "conll-bio" else ""))
            _check_labels(ds, base, split, path, exs)
        for split in files:
            ds.load(split)  # the dataset's own checks (label tables); parsed files are cached
    except FormatError as e:
        if base == "conll-bio" and e.line is not None and "tag column" in str(e):
            problem = str(e)[len(f"{e.path}, line {e.line}: "):].rsplit(". Expected", 1)[0]
            raise FormatError(e.path, e.line, problem + _tag_col_hint(Path(e.path), e.line, opts),
                              "O, B-<type> or I-<type> in the tag column (a CoNLL BIO file)") from None
        raise
    return ds


def _check_labels(ds: Any, base: str, split: str, path: Path, exs: list) -> None:
    """A user label table that misses a type found in ``path``: name the file, the types and the key."""
    checks = []
    if ds.task == "ner":
        checks.append(("labels", getattr(ds, "labels", {}), {t for ex in exs for *_, t in ex.entities}))
    if ds.task == "re":
        if getattr(ds, "entity_stage", True):
            checks.append(("entity_labels", ds.entity_labels, {t for ex in exs for *_, t in ex.entities}))
        checks.append(("relation_labels", ds.relation_labels, {r[6] for ex in exs for r in ex.relations}))
    for key, table, found in checks:
        missing = sorted(found - set(table))
        if missing:
            raise SpecError(f"{path} ({split}=): type(s) {missing} have no entry in {key}= (it lists {sorted(table)}). "
                            f"Add them ({key}={';'.join(f'{t}:{t}' for t in missing[:2])};...) or leave {key}= out to "
                            f"name every type automatically.")


def check_dataset_arg(s: str, load: bool = False) -> str:
    """Validate one ``datasets`` entry: a registered name, or a spec that parses (and, with ``load``,
    whose files check out). Returns ``s``; raises :class:`SpecError` (a ``ValueError``) otherwise.

    For a pydantic ``field_validator("datasets")``: ``return [check_dataset_arg(d) for d in v]``.
    """
    if is_spec(s):
        load_spec(s) if load else parse_spec(s)
        return s
    if s not in _registered_names():
        names = sorted(_registered_names())
        raise SpecError(f"Unknown dataset {s!r}.{_close(s, names, 'dataset')} Known datasets: {', '.join(names)}; "
                        f"or your own files as a spec: {GRAMMAR}.")
    return s

