"""Offline stand-ins for the paper path's three online pieces (used by tests/test_paper_path.py).

- :class:`PaperTeacher`: an OpenAI-compatible chat-completions server on 127.0.0.1 (stdlib http.server in a
  thread) that answers as ``gpt-3.5-turbo``. It recognises the paper's ``metaie-v1`` messages (user message
  first, then the system one), ``ner-v1`` and the ``llm-icl`` chat, and answers ``- <label>: <span>`` lines
  whose spans are copied from the sentence: runs of capitalised words as ``Entity`` (``Person`` for the
  ``ner-v1`` prompt), numbers as ``Number``. It reports usage tokens and records every request body and
  Authorization header, so a test can assert the exact messages that were sent and which key was used.
- :func:`build_tiny_roberta`: a randomly initialised 2-layer RoBERTa (hidden 32) with a byte-level BPE
  tokenizer trained here with ``tokenizers``, saved as a RobertaTokenizerFast folder with
  ``max_position_embeddings=514`` and ``model_max_length=512`` (roberta-large's window), usable as
  ``backbone`` (a local folder).
- :func:`write_local_corpus`: an OpenWebText-shaped local dataset (a folder with ``train.jsonl``, one
  multi-paragraph document per line, key ``text``) that ``corpus: hf:<folder>`` streams through the very
  ``datasets.load_dataset(..., streaming=True)`` call that reads ``hf:Skylion007/openwebtext``.

The corpus and the tokenizer's training text are CoNLL-2003 English train sentences from the data folder
(``$METAIE_DATA_DIR/conll2003/eng.train``), grouped into documents at ``-DOCSTART-``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAPER_MODEL = "gpt-3.5-turbo"
_CAP_RUN = re.compile(r"\b[A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*)*")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,.]*\d(?![\w])|(?<![\w.])\d(?![\w.])")
_STOP = {"The", "A", "An", "In", "On", "At", "He", "She", "It", "They", "We", "I", "But", "And", "This", "That"}


def spans_of(sentence: str) -> list[tuple[str, str]]:
    """``(kind, span)`` pairs copied from ``sentence``: capitalised word runs, then numbers.

    >>> spans_of("The European Commission said 27 states agreed on Thursday .")
    [('cap', 'European Commission'), ('cap', 'Thursday'), ('num', '27')]
    """
    out: list[tuple[str, str]] = []
    for m in _CAP_RUN.finditer(sentence):
        words = m.group(0).split()
        while words and words[0] in _STOP:  # a sentence-initial "The" is not an entity
            words = words[1:]
        span = " ".join(words).rstrip(".,'")
        if span and ("cap", span) not in out:
            out.append(("cap", span))
    for m in _NUMBER.finditer(sentence):
        if ("num", m.group(0)) not in out:
            out.append(("num", m.group(0)))
    return out[:4]


def answer(messages: list[dict]) -> str:
    """The fake teacher's answer to one chat (see the module docstring)."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system")
    first_user = users[0] if users else ""
    if first_user.startswith("Extract some short important information"):  # metaie-v1 (and metaie-1shot-v1)
        sentence = users[-1].split("\n", 1)[-1]
        lines = [f"- {'Entity' if k == 'cap' else 'Number'}: {s}" for k, s in spans_of(sentence)]
        return "\n".join(lines) or "- Topic: " + " ".join(sentence.split()[:2])
    if first_user.startswith("Extract all named entities"):  # ner-v1 (the ner-distill baseline)
        sentence = users[-1].split("\n", 1)[-1]
        return "\n".join(f"- Person: {s}" for k, s in spans_of(sentence) if k == "cap") or "- none"
    m = re.search(r"from the user's sentence: (.+?)\. Answer", system)  # llm-icl, NER (icl-ner-v1)
    last = users[-1] if users else ""
    if not m and "\nQueries: " in last:  # llm-icl, every other task (icl-v2): the queries end the last message
        sentence, queries = last.rsplit("\nQueries: ", 1)
        m = re.match(r"(.+)", queries)
    else:
        sentence = last
    if m:
        types = [t.strip() for t in re.split(r"[,;]", m.group(1)) if t.strip()]
        return "\n".join(f"- {types[0]}: {s}" for k, s in spans_of(sentence) if k == "cap") or "- none"
    return "- none"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that went away: expected in tests
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class PaperTeacher:
    """``with PaperTeacher() as t: ...``: ``t.base_url`` (``http://127.0.0.1:<port>/v1``), ``t.requests``
    (every POST body, in arrival order), ``t.auth_headers``; ``t.model`` is what ``/v1/models`` lists."""

    def __init__(self, model: str = PAPER_MODEL):
        self.model = model
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "PaperTeacher":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": srv.model, "object": "model", "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                with srv.lock:
                    srv.requests.append(body)
                    srv.auth_headers.append(self.headers.get("Authorization", ""))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                if body.get("model") != srv.model:
                    return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist",
                                                      "type": "invalid_request_error", "code": "model_not_found"}})
                msgs = body.get("messages") or []
                text = answer(msgs)
                prompt_tokens = sum(len(str(m.get("content", "")).split()) + 4 for m in msgs)
                completion_tokens = len(text.split())
                self._send(200, {
                    "id": f"chatcmpl-fake{len(srv.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": "gpt-3.5-turbo-0125", "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                })

        return H


# ----------------------------------------------------------------------------------------------- corpus


def conll_documents(data_dir: Path, max_docs: int = 80) -> list[list[str]]:
    """CoNLL-2003 English train documents as lists of detokenised-enough sentences (words joined by spaces)."""
    docs: list[list[str]] = []
    sent: list[str] = []
    with open(Path(data_dir) / "conll2003" / "eng.train", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("-DOCSTART-"):
                if len(docs) >= max_docs:
                    break
                docs.append([])
                continue
            if not line:
                if sent and docs:
                    docs[-1].append(" ".join(sent))
                sent = []
                continue
            sent.append(line.split(" ")[0])
    return [d for d in docs if d]


def write_local_corpus(folder: Path, data_dir: Path, max_docs: int = 80) -> Path:
    """``folder/train.jsonl``: one OpenWebText-like document per line (``{"text": ...}``, paragraphs blank-line
    separated: each CoNLL sentence is a paragraph, so stage 01's first-sentence rule keeps it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w", encoding="utf-8") as f:
        for doc in conll_documents(data_dir, max_docs):
            f.write(json.dumps({"text": "\n\n".join(doc)}) + "\n")
    return folder


# ----------------------------------------------------------------------------------------------- model


def build_tiny_roberta(folder: Path, texts: list[str], vocab_size: int = 1200, seed: int = 0) -> Path:
    """A random tiny RoBERTa + a byte-level BPE tokenizer trained on ``texts``, saved to ``folder``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # roberta's ids 0..4
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=specials, show_progress=False)
    raw = folder / "bpe"
    raw.mkdir(exist_ok=True)
    vocab, merges = bpe.save_model(str(raw))
    import inspect

    names = inspect.signature(RobertaTokenizerFast.__init__).parameters
    files = {"vocab": vocab, "merges": merges} if "vocab" in names else {"vocab_file": vocab, "merges_file": merges}
    tok = RobertaTokenizerFast(**files, model_max_length=512)  # transformers 5: vocab/merges; 4.x: *_file
    if len(tok) <= len(specials):
        raise RuntimeError(f"the byte-level BPE vocabulary of {raw} did not load into {type(tok).__name__}")
    tok.save_pretrained(folder)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=514, type_vocab_size=1,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    RobertaModel(cfg).save_pretrained(folder)
    return folder
