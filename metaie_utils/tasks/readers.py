"""Readers of the original benchmark formats into :class:`~metaie_utils.tasks.base.Example` lists.

Each reader takes a path (and an id prefix) and fails with a :class:`FormatError` naming the file and the
line when the file is not in its format. Formats (see shared/data/SOURCES.md):

- :func:`read_conll_columns`: CoNLL column files (CoNLL2003 IOB1 with ``-DOCSTART-``; WNUT2017 with
  TAB-only separator lines; BC5CDR/NCBI/JNLPBA ``token<TAB>tag`` IOB2).
- :func:`read_spert_json`: SpERT JSON (CoNLL04, ADE).
- :func:`read_aste`: ASTE-V2 ``sentence####[([a], [o], 'POS'), ...]`` lines.
- :func:`read_label_to_span`: the authors' JSON-lines label-to-span files (groups of records per sentence).
- :func:`read_semeval2010_task8`: 4-line CRLF records with ``<e1>``/``<e2>`` markup.
- :func:`read_casie`: CASIE annotation JSON documents (character offsets) split into sentences.
- :func:`read_qasrl_gold`: QA-SRL gold CSV + sentence CSV.
- :func:`read_conllu_srl`: Universal PropBank CoNLL-U (head-word arguments -> subtree spans).
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

from metaie_utils.tasks.base import Event, Example, FormatError, Frame

__all__ = [
    "tags_to_spans", "read_conll_columns", "read_spert_json", "read_aste", "read_label_to_span",
    "read_semeval2010_task8", "read_casie_doc", "read_qasrl_gold", "read_conllu_srl", "subtree_span",
]

_BLANK = re.compile(r"^\s*$")


def tags_to_spans(tags: Sequence[str], scheme: str = "iob2") -> list[tuple[int, int, str]]:
    """Typed spans ``(start, end, type)`` of a BIO tag sequence.

    ``scheme="iob2"``: ``B-X`` starts a span; an ``I-X`` after ``O`` or after another type also starts
    one (lenient, as seqeval). ``scheme="iob1"`` (CoNLL2003): ``I-X`` starts a span unless it continues a
    span of type X; ``B-X`` only separates two touching spans of the same type. Both give the same
    spans for valid input, so IOB1 is read by the same rule.

    >>> tags_to_spans(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1")
    [(0, 2, 'PER'), (2, 3, 'PER'), (4, 5, 'LOC')]
    >>> tags_to_spans(["B-Disease", "I-Disease", "O"])
    [(0, 2, 'Disease')]
    """
    if scheme not in ("iob1", "iob2"):
        raise ValueError(f"unknown tagging scheme {scheme!r}; use 'iob1' or 'iob2'")
    spans: list[tuple[int, int, str]] = []
    start, typ = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if tag == "O" or tag == "":
            pre, t = "O", None
        else:
            pre, _, t = tag.partition("-")
            if pre not in ("B", "I") or not t:
                raise ValueError(f"bad BIO tag {tag!r} at position {i}; expected O, B-<type> or I-<type>")
        starts = pre == "B" or (pre == "I" and (start is None or t != typ))
        if start is not None and (pre == "O" or starts):
            spans.append((start, i, typ))
            start, typ = None, None
        if starts:
            start, typ = i, t
    return spans


def read_conll_columns(
    path: str | Path,
    prefix: str,
    token_col: int = 0,
    tag_col: int = -1,
    scheme: str = "iob2",
    sep: str | None = None,
) -> list[Example]:
    """Sentences of a CoNLL column file: blank (or whitespace-only) lines separate sentences.

    ``-DOCSTART-`` lines and their blank line are skipped; ``sep=None`` splits columns on any whitespace
    (tokens never contain spaces in these corpora; pass ``sep="\\t"`` otherwise).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.conll")
    >>> _ = open(p, "w").write("-DOCSTART- -X- O O\\n\\nEU NNP I-NP I-ORG\\nrejects VBZ I-VP O\\n\\t\\nHi O O O\\n")
    >>> [(e.tokens, e.entities) for e in read_conll_columns(p, "x", scheme="iob1")]
    [(['EU', 'rejects'], [(0, 1, 'ORG')]), (['Hi'], [])]
    """
    path = Path(path)
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 1

    def flush() -> None:
        if tokens:
            try:
                spans = tags_to_spans(tags, scheme)
            except ValueError as e:
                raise FormatError(path, start_line, str(e), "a BIO tag in the tag column") from None
            examples.append(Example(id=f"{prefix}/{len(examples)}", tokens=list(tokens), entities=spans,
                                    meta={"line": start_line}))
        tokens.clear()
        tags.clear()

    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if _BLANK.match(line):
                flush()
                start_line = n + 1
                continue
            cols = line.split(sep) if sep else line.split()
            if cols[0] == "-DOCSTART-":
                flush()
                start_line = n + 1
                continue
            try:
                if len(cols) < 2:
                    raise IndexError(tag_col)
                tok, tag = cols[token_col], cols[tag_col]
            except IndexError:
                raise FormatError(path, n, f"line {line[:80]!r} has {len(cols)} column(s)",
                                  f"at least {max(token_col, tag_col) + 1 if tag_col >= 0 else 2} columns (token ... BIO tag)") from None
            if not (tag == "O" or re.match(r"^[BI]-\S+$", tag)):
                raise FormatError(path, n, f"tag column holds {tag!r}", "O, B-<type> or I-<type> (a CoNLL BIO file)")
            if not tokens:
                start_line = n
            tokens.append(tok)
            tags.append(tag)
    flush()
    return examples


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise FormatError(path, e.lineno, f"invalid JSON ({e.msg})", "one JSON document") from None


def read_spert_json(path: str | Path, prefix: str) -> list[Example]:
    """SpERT JSON: a list of ``{"tokens", "entities": [{type,start,end}], "relations": [{type,head,tail}]}``.

    Entity ends are exclusive. Relations become ``(hs, he, htype, ts, te, ttype, rel)``.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise FormatError(path, 1, f"top-level JSON is a {type(data).__name__}", "a list of SpERT records")
    out = []
    for i, r in enumerate(data):
        try:
            toks = list(r["tokens"])
            ents = [(int(e["start"]), int(e["end"]), str(e["type"])) for e in r.get("entities", [])]
            rels = []
            for rel in r.get("relations", []):
                h, t = ents[int(rel["head"])], ents[int(rel["tail"])]
                rels.append((h[0], h[1], h[2], t[0], t[1], t[2], str(rel["type"])))
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise FormatError(path, None, f"record {i} is not SpERT ({type(e).__name__}: {e})",
                              '{"tokens": [...], "entities": [{"type", "start", "end"}], "relations": [{"type", "head", "tail"}]}') from None
        for s, e, _ in ents:
            if not 0 <= s < e <= len(toks):
                raise FormatError(path, None, f"record {i} has entity span {(s, e)} outside its {len(toks)} tokens", "0 <= start < end <= len(tokens)")
        out.append(Example(id=f"{prefix}/{len(out)}", tokens=toks, entities=ents, relations=rels,
                           meta={"orig_id": r.get("orig_id")}))
    return out


_POLARITY = {"POS": "positive", "NEG": "negative", "NEU": "neutral"}


def read_aste(path: str | Path, prefix: str) -> list[Example]:
    """ASTE-V2 lines ``sentence####[([aspect idx], [opinion idx], 'POS'|'NEG'|'NEU'), ...]``.

    Index lists become half-open spans (first, last + 1); polarity becomes positive/negative/neutral.
    """
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            sent, sep, rest = line.partition("####")
            if not sep:
                raise FormatError(path, n, "no '####' separator", "sentence####[([aspect idx], [opinion idx], 'POS'), ...]")
            toks = sent.split()
            try:
                trips = ast.literal_eval(rest)
                triplets = []
                for a, o, pol in trips:
                    triplets.append((min(a), max(a) + 1, min(o), max(o) + 1, _POLARITY[pol]))
            except (ValueError, SyntaxError, TypeError, KeyError) as e:
                raise FormatError(path, n, f"cannot parse the triplets {rest[:60]!r} ({type(e).__name__})",
                                  "a Python list of ([aspect idx], [opinion idx], 'POS'|'NEG'|'NEU')") from None
            for t in triplets:
                if t[1] > len(toks) or t[3] > len(toks):
                    raise FormatError(path, n, f"triplet {t} points past the {len(toks)} tokens", "word indices inside the sentence")
            out.append(Example(id=f"{prefix}/{len(out)}", tokens=toks, triplets=triplets, meta={"line": n}))
    return out


def read_label_to_span(path: str | Path, prefix: str, label_to_type) -> list[Example]:
    """The authors' JSON-lines files: one record per (sentence, label); consecutive records of the same
    sentence are grouped into one Example whose entities are typed by ``label_to_type[label text]``
    (a dict or its items).
    """
    from metaie_utils.core.bio import bio_spans

    label_to_type = dict(label_to_type)
    path = Path(path)
    out: list[Example] = []
    cur_tokens: list[str] | None = None
    cur_labels: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                words, tags = rec["words"], rec["ner"]
                k = words.index(":")
            except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                raise FormatError(path, n, "not a label-to-span record", '{"words": [label..., ":", tokens...], "ner": [tags...]}') from None
            label = " ".join(words[:k])
            if label not in label_to_type:
                raise FormatError(path, n, f"unknown label {label!r}", f"one of {sorted(label_to_type)}")
            toks = words[k + 1:]
            if cur_tokens is None or toks != cur_tokens or label in cur_labels:
                out.append(Example(id=f"{prefix}/{len(out)}", tokens=toks, meta={"line": n}))
                cur_tokens, cur_labels = toks, set()
            cur_labels.add(label)
            for s, e in bio_spans(tags[k + 1:]):
                out[-1].entities.append((s, e, label_to_type[label]))
    for ex in out:
        ex.entities.sort()
    return out


_E_TAG = re.compile(r"</?e[12]>")


def _tokenize_marked(sentence: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Tokenize a SemEval sentence with ``<e1>..</e1>`` markup; spans of e1/e2 in words."""
    from metaie_utils.core.text import word_tokenize

    tokens: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    opened: dict[str, int] = {}
    for m in _E_TAG.finditer(sentence):
        tokens += word_tokenize(sentence[pos:m.start()])
        tag = m.group(0)
        name = tag.strip("</>")
        if tag.startswith("</"):
            spans[name] = (opened.pop(name), len(tokens))
        else:
            opened[name] = len(tokens)
        pos = m.end()
    tokens += word_tokenize(sentence[pos:])
    return tokens, spans


def read_semeval2010_task8(path: str | Path, prefix: str) -> list[Example]:
    """SemEval-2010 Task 8 records (``id<TAB>"sentence"``, label, ``Comment:``, blank; CRLF).

    The directed label ``Rel(e2,e1)`` becomes a relation with head e2 and tail e1; ``Other`` gives no
    relation. Both nominals are entities of type ``"Nominal"``.
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        lines = [ln.rstrip("\r\n") for ln in f]
    out = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i]
        m = re.match(r'^(\d+)\t"(.*)"\s*$', head)
        if not m or i + 1 >= len(lines):
            raise FormatError(path, i + 1, f"record header {head[:60]!r}", 'id<TAB>"sentence with <e1>..</e1> and <e2>..</e2>"')
        label = lines[i + 1].strip()
        lm = re.match(r"^([A-Za-z]+-[A-Za-z]+)\((e[12]),(e[12])\)$", label)
        if not (lm or label == "Other"):
            raise FormatError(path, i + 2, f"relation label {label!r}", "Rel-Name(e1,e2), Rel-Name(e2,e1) or Other")
        toks, sp = _tokenize_marked(m.group(2))
        if set(sp) != {"e1", "e2"}:
            raise FormatError(path, i + 1, "the sentence does not mark both <e1> and <e2>", "both nominals marked")
        ents = sorted([(sp["e1"][0], sp["e1"][1], "Nominal"), (sp["e2"][0], sp["e2"][1], "Nominal")])
        rels = []
        if lm:
            h, t = sp[lm.group(2)], sp[lm.group(3)]
            rels.append((h[0], h[1], "Nominal", t[0], t[1], "Nominal", lm.group(1)))
        out.append(Example(id=f"{prefix}/{m.group(1)}", tokens=toks, entities=ents, relations=rels,
                           meta={"line": i + 1, "label": label, "e1": sp["e1"], "e2": sp["e2"]}))
        i += 2
        while i < len(lines) and lines[i].strip():  # Comment: line(s)
            i += 1
    return out


def _char_to_word(spans: list[tuple[int, int]], cs: int, ce: int) -> tuple[int, int] | None:
    """Half-open word span covering characters [cs, ce), or None when no word overlaps."""
    idx = [k for k, (s, e) in enumerate(spans) if s < ce and e > cs]
    return (idx[0], idx[-1] + 1) if idx else None


def _fix_offsets(content: str, cs: int | None, ce: int | None, text: str | None, window: int = 60) -> tuple[int, int] | None:
    """``(cs, ce)`` when ``content[cs:ce] == text``; else the occurrence of ``text`` nearest to ``cs`` within
    ``window`` characters (some CASIE documents have shifted offsets); else None.

    >>> _fix_offsets("xx held to ransom", 0, 14, "held to ransom")
    (3, 17)
    """
    if cs is None or ce is None or not text:
        return None
    if content[cs:ce] == text:
        return cs, ce
    best = None
    k = content.find(text, max(0, cs - window))
    while k != -1 and k <= cs + window:
        if best is None or abs(k - cs) < abs(best - cs):
            best = k
        k = content.find(text, k + 1)
    return (best, best + len(text)) if best is not None else None


def read_casie_doc(path: str | Path, prefix: str) -> tuple[list[Example], dict]:
    """One CASIE document as sentence Examples with events (subtype = event type).

    The content is split into sentences (``text.split_sentences``) and words (``text.word_spans``);
    character offsets map to the words they overlap. An event belongs to the sentence holding its
    trigger; arguments outside that sentence are dropped (counted in the returned stats). Offsets that do
    not slice their text are moved to the nearest occurrence of the text within 60 characters
    (:func:`_fix_offsets`); mentions still not found are dropped. Returns ``(examples, stats)``.
    """
    from metaie_utils.core.text import split_sentences, word_spans

    path = Path(path)
    doc = _load_json(path)
    try:
        content: str = doc["content"]
        hoppers = doc.get("cyberevent", {}).get("hopper", [])
    except (AttributeError, KeyError, TypeError):
        raise FormatError(path, None, "no 'content'/'cyberevent' fields", "a CASIE annotation document") from None
    stats = {"events": 0, "events_moved": 0, "events_dropped": 0, "arguments": 0, "arguments_dropped": 0}
    # sentences with character offsets
    sents: list[tuple[int, int]] = []
    pos = 0
    for s in split_sentences(content):
        k = content.find(s, pos)
        if k < 0:  # sentencex normalised something: fall back to a loose search
            k = pos
        sents.append((k, k + len(s)))
        pos = k + len(s)
    examples: list[Example] = []
    word_offsets: list[list[tuple[int, int]]] = []
    for si, (a, b) in enumerate(sents):
        ws = word_spans(content[a:b])
        examples.append(Example(id=f"{prefix}/{si}", tokens=[w for w, _, _ in ws],
                                meta={"doc": path.stem, "char_start": a}))
        word_offsets.append([(a + s, a + e) for _, s, e in ws])

    def locate(cs: int, ce: int) -> tuple[int, tuple[int, int]] | None:
        for si, (a, b) in enumerate(sents):
            if a <= cs < b:
                w = _char_to_word(word_offsets[si], cs, min(ce, b))
                return (si, w) if w else None
        return None

    for hop in hoppers:
        for ev in hop.get("events", []):
            stats["events"] += 1
            nug = ev.get("nugget", {})
            fixed = _fix_offsets(content, nug.get("startOffset"), nug.get("endOffset"), nug.get("text"))
            if fixed is None:
                stats["events_dropped"] += 1
                continue
            stats["events_moved"] += fixed[0] != nug.get("startOffset")
            loc = locate(*fixed)
            if loc is None:
                stats["events_dropped"] += 1
                continue
            si, trig = loc
            args = []
            for arg in ev.get("argument", []):
                stats["arguments"] += 1
                afix = _fix_offsets(content, arg.get("startOffset"), arg.get("endOffset"), arg.get("text"))
                aloc = locate(*afix) if afix else None
                if aloc is None or aloc[0] != si:
                    stats["arguments_dropped"] += 1
                    continue
                args.append((aloc[1][0], aloc[1][1], str(arg["role"]["type"])))
            examples[si].events.append(Event(trigger=trig, type=str(ev.get("subtype") or ev.get("type")),
                                             arguments=sorted(set(args))))
    return examples, stats


def read_qasrl_gold(gold_path: str | Path, sentences_path: str | Path, prefix: str) -> list[Example]:
    """QA-SRL gold CSV (one row per QA) joined with the sentence CSV: one Example per annotated sentence.

    Each verb is a :class:`Frame` at ``(verb_idx, verb_idx + 1)``; each answer range ``s:e`` (end
    exclusive, several joined by ``~!~``) is an argument whose role is the question. A question asked
    twice for one verb (one case in wikinews dev) merges into one; ``meta["qa_rows"]`` keeps the row count.
    """
    gold_path, sentences_path = Path(gold_path), Path(sentences_path)
    with open(sentences_path, encoding="utf-8", newline="") as f:
        rd = csv.DictReader(f)
        if not rd.fieldnames or not {"qasrl_id", "tokens"} <= set(rd.fieldnames):
            raise FormatError(sentences_path, 1, f"header {rd.fieldnames}", "columns qasrl_id, tokens, sentence")
        toks_of = {r["qasrl_id"]: r["tokens"].split(" ") for r in rd}
    order: list[str] = []
    frames: dict[str, dict[int, Frame]] = {}
    n_rows: dict[str, int] = {}
    with open(gold_path, encoding="utf-8", newline="") as f:
        rd = csv.DictReader(f)
        need = {"qasrl_id", "verb_idx", "verb", "question", "answer_range"}
        if not rd.fieldnames or not need <= set(rd.fieldnames):
            raise FormatError(gold_path, 1, f"header {rd.fieldnames}", f"QA-SRL gold columns {sorted(need)}")
        for n, r in enumerate(rd, 2):
            sid = r["qasrl_id"]
            if sid not in toks_of:
                raise FormatError(gold_path, n, f"sentence {sid!r} is not in {sentences_path.name}", "every qasrl_id in the sentence CSV")
            if sid not in frames:
                frames[sid] = {}
                order.append(sid)
            try:
                v = int(r["verb_idx"])
                ranges = [tuple(int(x) for x in rg.split(":")) for rg in r["answer_range"].split("~!~") if rg]
            except ValueError:
                raise FormatError(gold_path, n, f"verb_idx {r['verb_idx']!r} / answer_range {r['answer_range']!r}", "an integer and s:e[~!~s:e...]") from None
            n_rows[sid] = n_rows.get(sid, 0) + 1
            fr = frames[sid].setdefault(v, Frame(predicate=(v, v + 1), sense=r["verb"]))
            for s, e in ranges:
                fr.arguments.append((s, e, r["question"]))
    out = []
    for sid in order:
        frs = sorted(frames[sid].values(), key=lambda fr: fr.predicate)
        for fr in frs:
            fr.arguments = sorted(set(fr.arguments))
        out.append(Example(id=f"{prefix}/{sid}", tokens=toks_of[sid], frames=frs, meta={"qasrl_id": sid, "qa_rows": n_rows[sid]}))
    return out


def subtree_span(heads: Sequence[int], head: int, predicate: int) -> tuple[int, int]:
    """Argument span from its head word: the contiguous run of the head's dependency subtree around
    the head, cut before the predicate (0-based word indices; ``heads[i]`` is the 0-based head of word i,
    -1 for the root).

    >>> heads = [2, 2, 3, -1, 5, 3]          # "the old man sleeps a lot": man <- sleeps -> lot
    >>> subtree_span(heads, 2, 3), subtree_span(heads, 5, 3)
    ((0, 3), (4, 6))
    """
    n = len(heads)
    inside = [False] * n
    for i in range(n):
        j, steps = i, 0
        while j != -1 and steps <= n:
            if j == head:
                inside[i] = True
                break
            j, steps = heads[j], steps + 1
    inside[predicate] = predicate == head
    s = head
    while s - 1 >= 0 and inside[s - 1]:
        s -= 1
    e = head + 1
    while e < n and inside[e]:
        e += 1
    return s, e


def read_conllu_srl(path: str | Path, prefix: str) -> list[Example]:
    """Universal PropBank CoNLL-U: column 11 the predicate sense, columns 12+ one argument column per
    predicate (in sentence order); labels sit on head words and become :func:`subtree_span` spans.

    Multiword-token lines (``3-4``) and empty nodes (``8.1``) are skipped. ``V`` (and ``C-V``) marks the predicate
    and is not an argument.
    """
    path = Path(path)
    out: list[Example] = []
    rows: list[list[str]] = []
    first_line = 1
    comments: dict[str, str] = {}

    def flush() -> None:
        if not rows:
            return
        toks = [r[1] for r in rows]
        heads = [int(r[6]) - 1 for r in rows]
        preds = [i for i, r in enumerate(rows) if r[10] != "_"]
        frames = []
        for j, p in enumerate(preds):
            col = [r[11 + j] if len(r) > 11 + j else "_" for r in rows]
            if "V" not in col:  # a sense without an argument column (179 in dev): not a frame
                continue
            args = []
            for i, r in enumerate(rows):
                lab = col[i]
                if lab in ("_", "", "V", "C-V"):
                    continue
                s, e = subtree_span(heads, i, p)
                args.append((s, e, lab))
            frames.append(Frame(predicate=(p, p + 1), sense=rows[p][10], arguments=sorted(set(args))))
        out.append(Example(id=f"{prefix}/{comments.get('sent_id', len(out))}", tokens=toks, frames=frames,
                           meta={"line": first_line, "text": comments.get("text", "")}))
        rows.clear()
        comments.clear()

    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                flush()
                first_line = n + 1
                continue
            if line.startswith("#"):
                k, _, v = line[1:].partition("=")
                comments[k.strip()] = v.strip()
                continue
            cols = line.split("\t")
            if len(cols) < 11:
                raise FormatError(path, n, f"{len(cols)} tab-separated columns", "CoNLL-U with a predicate column (11+ columns)")
            if not cols[0].isdigit():
                continue  # multiword token or empty node
            if not cols[6].isdigit():
                raise FormatError(path, n, f"HEAD column {cols[6]!r}", "an integer head index")
            rows.append(cols)
    flush()
    return out
