"""Stage 02: ask a teacher LLM for "important information" on each sentence, with a crash-safe cache.

One client for every OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, the llama.cpp server of
:mod:`metaie_utils.teacher`) through the ``openai`` package:

- bounded async concurrency (``concurrency`` requests in flight), run in a worker thread when the
  caller already has an event loop (Jupyter, papermill), so ``complete_many`` is a plain call;
- our own retries (the ``openai`` client's are disabled so every retry is counted): exponential
  backoff with full jitter on 429, 408/409, 5xx, timeouts, dropped connections and malformed JSON,
  honouring ``Retry-After`` / ``retry-after-ms``; fatal errors (400, 401, 403, 404, 422, or an
  endpoint that never answers) stop the run at once with a message naming the URL and the model;
- a persistent cache (sqlite in WAL mode, one committed row per finished response) keyed by a hash of
  (model, prompt version, messages, sampling params, sample index): a re-run sends no request, and a
  run killed with SIGKILL resumes without duplicating or losing a finished response;
- token usage, a cost estimate from a price table, throughput and a tqdm progress bar.

A sentence longer than the teacher's context: the server answers 400 "context"; that request gets
``error="context_length_exceeded"`` (counted, not cached, not fatal) and the run goes on.

>>> build_messages("metaie-v1", "Tom loves Mary.")[0]["content"]
'Extract some short important information from the following sentence:\\nTom loves Mary.'
>>> [m["role"] for m in build_messages("metaie-v1", "Tom loves Mary.")]
['user', 'system']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from metaie_utils.core.errors import UserError
from metaie_utils.core.io import read_jsonl

#: The paper's exact messages (the authors' code sends the user message FIRST, then the system one).
PAPER_USER = "Extract some short important information from the following sentence:\n{sentence}"


PAPER_SYSTEM = "Important information (Format: - <label>: <span>):\n"


ONE_SHOT_SENTENCE = "Former secretary of state Hillary Clinton meets voters at a campaign rally in St. Louis on Saturday."


#: Labels and spans of the authors' own gpt-3.5 instances for this sentence (metaie_reference/distill).
ONE_SHOT_ANSWER = (
    "- Person: Hillary Clinton\n"
    "- Position: Former secretary of state\n"
    "- Activity: meets voters\n"
    "- Location: St. Louis\n"
    "- Date: Saturday"
)


ONE_SHOT_SYSTEM = (
    "You extract short important information from a sentence. Answer only with lines of the form "
    "\"- <label>: <span>\", where <span> is copied word for word from the sentence."
)


NER_USER = "Extract all named entities from the following sentence:\n{sentence}"


NER_SYSTEM = "Named entities (Format: - <entity type>: <entity>):\n"


NER_ICL_SYSTEM = (
    "You extract named entities from a sentence. Answer only with lines of the form \"- <entity type>: <entity>\", "
    "where <entity> is copied word for word from the sentence; answer \"- none\" when it has none."
)


#: In-context NER demonstrations of ``ner-icl-v1`` (the paper prompts its NER-distillation baseline with
#: task-specific examples, UniversalNER style): open entity types, one sentence without entities.
NER_DEMOS: tuple[tuple[str, str], ...] = (
    (ONE_SHOT_SENTENCE, "- Person: Hillary Clinton\n- Location: St. Louis\n- Date: Saturday"),
    ("Shares of Apple rose 3 percent in New York after the company unveiled the iPhone X on Tuesday.",
     "- Organization: Apple\n- Location: New York\n- Product: iPhone X\n- Date: Tuesday"),
    ("The weather stayed cold and wet for most of the week.", "- none"),
)


#: prompt version -> list of (role, template); ``{sentence}`` is filled in. Never edit a version in
#: place (cached responses are keyed by it): add a new version instead.
PROMPTS: dict[str, list[tuple[str, str]]] = {
    "metaie-v1": [("user", PAPER_USER), ("system", PAPER_SYSTEM)],
    "metaie-1shot-v1": [
        ("system", ONE_SHOT_SYSTEM),
        ("user", PAPER_USER.replace("{sentence}", ONE_SHOT_SENTENCE)),
        ("assistant", ONE_SHOT_ANSWER),
        ("user", PAPER_USER),
    ],
    "ner-v1": [("user", NER_USER), ("system", NER_SYSTEM)],
    "ner-icl-v1": [("system", NER_ICL_SYSTEM)]
    + [turn for sent, ans in NER_DEMOS for turn in (("user", NER_USER.replace("{sentence}", sent)), ("assistant", ans))]
    + [("user", NER_USER)],
}


#: A line the label-to-span stage can parse (the authors' regex ``- (.*)?: (.*)?``).
LABEL_LINE = re.compile(r"^\s*- (.+?): (.+)$", re.MULTILINE)


def build_messages(prompt_version: str, sentence: str) -> list[dict[str, str]]:
    """Chat messages of one sentence under a registered prompt version.

    >>> build_messages("ner-v1", "Tom left.")[-1]
    {'role': 'system', 'content': 'Named entities (Format: - <entity type>: <entity>):\\n'}
    """
    if prompt_version not in PROMPTS:
        raise UserError(f"Unknown prompt_version {prompt_version!r}; registered versions: {', '.join(PROMPTS)}.")
    return [{"role": r, "content": t.replace("{sentence}", sentence)} for r, t in PROMPTS[prompt_version]]


def count_label_lines(response: str | None) -> int:
    """Number of ``- <label>: <span>`` lines in a teacher response (0 for None).

    >>> count_label_lines("- Person: Tom\\n- Date: Friday\\nnoise")
    2
    """
    return len(LABEL_LINE.findall(response or ""))


def cache_key(model: str, prompt_version: str, messages: Sequence[dict], temperature: float, max_tokens: int,
              sample_index: int, seed: int | None = None) -> str:
    """sha256 over everything that determines a response.

    >>> len(cache_key("m", "metaie-v1", [{"role": "user", "content": "x"}], 1.0, 64, 0))
    64
    """
    blob = json.dumps(
        {"model": model, "prompt_version": prompt_version, "messages": list(messages), "temperature": float(temperature),
         "max_tokens": int(max_tokens), "sample_index": int(sample_index), "seed": seed},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def request_key(model: str, req: Mapping[str, Any]) -> str:
    """:func:`cache_key` of one ``complete_many`` request (its defaults: temperature 1.0, max_tokens 256)."""
    return cache_key(model, str(req.get("prompt_version", "")), req["messages"], float(req.get("temperature", 1.0)),
                     int(req.get("max_tokens", 256)), int(req.get("sample_index", 0)), req.get("seed"))


class ResponseCache:
    """sqlite (WAL) store of finished responses: ``key -> (text, finish_reason, usage)``.

    Every ``put`` is its own committed transaction, so a SIGKILL loses at most the in-flight requests.
    ``INSERT OR IGNORE`` on the primary key makes duplicates impossible.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, prompt_version TEXT, "
            "sample_index INTEGER, text TEXT, finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, "
            "created REAL)"
        )
        self.conn.commit()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key=?", (key,)
            ).fetchone()
        if row is None:
            return None
        return {"text": row[0], "finish_reason": row[1], "prompt_tokens": row[2] or 0, "completion_tokens": row[3] or 0}

    def put(self, key: str, model: str, prompt_version: str, sample_index: int, c: "Completion",
            created: float | None = None) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT OR IGNORE INTO responses VALUES (?,?,?,?,?,?,?,?,?)",
                (key, model, prompt_version, sample_index, c.text, c.finish_reason, c.prompt_tokens,
                 c.completion_tokens, time.time() if created is None else created),
            )
            self.conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class FatalLLMError(UserError):
    """The endpoint refused in a way retrying cannot fix (bad key, unknown model, bad request, down)."""


@dataclass
class Completion:
    """One answer (or failure) for one request."""

    text: str | None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None
    retries: int = 0
    latency: float = 0.0
    finished_at: float = 0.0  # seconds since the start of complete_many


@dataclass
class ClientStats:
    """Counters of one client across calls."""

    requests: int = 0  # HTTP requests sent (including retries)
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    completed: int = 0  # fresh successful responses
    errors: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0  # fresh responses only (what was paid for)
    completion_tokens: int = 0
    elapsed_s: float = 0.0


RETRYABLE_STATUS = {408, 409, 429}


MAX_RETRY_AFTER_S = 300.0


LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "[::1]")


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        ra = headers.get("retry-after")
        if ra is None:
            return None
        try:
            return float(ra)
        except ValueError:
            import email.utils

            dt = email.utils.parsedate_to_datetime(ra)
            return max(0.0, dt.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)).

    >>> 0 <= backoff_delay(3) <= 4.0
    True
    """
    r = rng or random
    return r.uniform(0, min(cap, base * (2 ** attempt)))


def _run_sync(coro_factory, stop: threading.Event | None = None):
    """Run ``coro_factory()`` to completion whether or not this thread already runs an event loop.

    In Jupyter/papermill a loop already runs in this thread, so the coroutine runs in a worker thread with
    its own loop. On Ctrl-C ``stop`` is set: requests not yet sent are skipped, in-flight ones finish and
    are cached, then the KeyboardInterrupt propagates.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metaie-llm")
    try:
        fut = ex.submit(lambda: asyncio.run(coro_factory()))
        return fut.result()
    except KeyboardInterrupt:
        if stop is not None:
            stop.set()
        raise
    finally:
        ex.shutdown(wait=True)


class LLMClient:
    """An OpenAI-compatible chat endpoint with concurrency, retries, a cache and accounting.

    ``base_url=None`` is the OpenAI API (key required in ``$api_key_env``); any other URL (vLLM, Ollama,
    the llama.cpp server) works without a key (a dummy is sent). The key is read from the environment
    only and never stored.

    >>> c = LLMClient("http://127.0.0.1:8080/v1", "smollm2")           # doctest: +SKIP
    >>> out = c.complete_many([{"messages": build_messages("metaie-v1", "Tom left."),
    ...                          "temperature": 1.0, "max_tokens": 64, "sample_index": 0}])  # doctest: +SKIP
    >>> out[0].text                                                      # doctest: +SKIP
    '- Person: Tom'
    """

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60,
        cache_path: Path | None = None,
        prices: dict | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ):
        if concurrency < 1:
            raise UserError(f"concurrency must be >= 1, got {concurrency}.")
        self.base_url = (base_url or None) and base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.cache = ResponseCache(cache_path) if cache_path else None
        self.prices = dict(prices or {})
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = ClientStats()
        self.last_completions: list[Completion] = []  # of the latest complete_many call (timings, usage)
        self._rng = random.Random()
        if self.base_url is None and not os.environ.get(api_key_env):
            raise UserError(
                f"No API key: the OpenAI API needs ${api_key_env} set in the environment (never in params or "
                f"notebooks). For a local or self-hosted endpoint set base_url instead."
            )

    @property
    def url(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    def _api_key(self) -> str:
        return os.environ.get(self.api_key_env) or "sk-no-key-required"

    # -- accounting ----------------------------------------------------------------------------------
    def cost_usd(self) -> float:
        """Estimated cost of the fresh (non-cached) tokens from ``prices``
        (``{"price_per_1k_input": .., "price_per_1k_output": ..}``)."""
        pin = float(self.prices.get("price_per_1k_input", 0.0))
        pout = float(self.prices.get("price_per_1k_output", 0.0))
        return self.stats.prompt_tokens / 1000 * pin + self.stats.completion_tokens / 1000 * pout

    def summary(self) -> dict[str, Any]:
        """Flat counters for metrics.json (no secrets)."""
        s = asdict(self.stats)
        out = {k: v for k, v in s.items() if not isinstance(v, dict)}
        out.update({f"retry_{k}": v for k, v in s["retry_reasons"].items()})
        out.update({f"error_{k}": v for k, v in s["errors"].items()})
        out["cost_usd"] = round(self.cost_usd(), 6)
        out["tokens_per_s"] = round(self.stats.completion_tokens / self.stats.elapsed_s, 3) if self.stats.elapsed_s else 0.0
        return out

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    # -- one request ---------------------------------------------------------------------------------
    async def _one(self, aclient, req: dict, sem: asyncio.Semaphore, t0: float, stop: threading.Event) -> Completion:
        import openai

        messages = req["messages"]
        temperature = float(req.get("temperature", 1.0))
        max_tokens = int(req.get("max_tokens", 256))
        sample_index = int(req.get("sample_index", 0))
        seed = req.get("seed")
        pv = str(req.get("prompt_version", ""))
        key = request_key(self.model, req)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                return Completion(cached=True, finished_at=time.monotonic() - t0, **hit)
        retries = 0
        last_conn: Exception | None = None
        async with sem:
            while True:
                if stop.is_set():
                    return Completion(text=None, error="cancelled", retries=retries)
                start = time.monotonic()
                self.stats.requests += 1
                wait: float | None = None
                try:
                    kwargs: dict[str, Any] = dict(model=self.model, messages=messages, temperature=temperature,
                                                  max_tokens=max_tokens)
                    if seed is not None:
                        kwargs["seed"] = int(seed)
                    resp = await aclient.chat.completions.create(**kwargs)
                    if not getattr(resp, "choices", None):
                        raise ValueError(f"response without choices: {str(resp)[:200]}")
                    choice = resp.choices[0]
                    usage = getattr(resp, "usage", None)
                    c = Completion(
                        text=choice.message.content if choice.message is not None else None,
                        finish_reason=choice.finish_reason,
                        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                        retries=retries,
                        latency=time.monotonic() - start,
                        finished_at=time.monotonic() - t0,
                    )
                    if c.text is None:
                        raise ValueError("response message without content")
                    if self.cache is not None:
                        self.cache.put(key, self.model, pv, sample_index, c)
                    self.stats.completed += 1
                    self.stats.prompt_tokens += c.prompt_tokens
                    self.stats.completion_tokens += c.completion_tokens
                    return c
                except openai.APIStatusError as e:
                    status = e.status_code
                    if status == 400 and "context" in str(e).lower():
                        self._count(self.stats.errors, "context_length_exceeded")
                        return Completion(text=None, error="context_length_exceeded", retries=retries)
                    if status in RETRYABLE_STATUS or status >= 500:
                        reason = "429" if status == 429 else ("5xx" if status >= 500 else str(status))
                        wait = _retry_after(getattr(e.response, "headers", None))
                    else:
                        raise FatalLLMError(_fatal_message(status, self.url, self.model, self.api_key_env, e)) from None
                except openai.APITimeoutError:
                    reason = "timeout"
                except openai.APIConnectionError as e:
                    reason = "connection"
                    last_conn = e
                except (ValueError, json.JSONDecodeError, openai.APIResponseValidationError):
                    reason = "malformed"
                if retries >= self.max_retries:
                    if reason == "connection":  # the server is gone: every other request would fail too
                        raise FatalLLMError(
                            f"Cannot reach the LLM endpoint {self.url} ({last_conn.__class__.__name__}) after "
                            f"{retries + 1} tries. Is the server running and the base_url right (it should end in "
                            f"/v1)? Finished responses are kept in the cache; re-run to resume."
                        ) from None
                    self._count(self.stats.errors, f"gave_up_{reason}")
                    return Completion(text=None, error=f"gave_up_after_{retries + 1}_tries:{reason}", retries=retries)
                retries += 1
                self.stats.retries += 1
                self._count(self.stats.retry_reasons, reason)
                delay = backoff_delay(retries - 1, self.backoff_base, self.backoff_cap, self._rng)
                if wait is not None:  # the server said how long: wait that long (up to MAX_RETRY_AFTER_S)
                    delay = max(delay, min(wait, MAX_RETRY_AFTER_S))
                await asyncio.sleep(delay)

    async def _many(self, requests: list[dict], progress: bool, stop: threading.Event) -> list[Completion]:
        import httpx
        import openai
        from tqdm.auto import tqdm

        t0 = time.monotonic()
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency + 2, max_keepalive_connections=self.concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key(), max_retries=0, timeout=self.timeout,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout),
        ) as aclient:
            tasks = [asyncio.create_task(self._one(aclient, r, sem, t0, stop)) for r in requests]
            bar = tqdm(total=len(tasks), desc=f"LLM {self.model}", unit="resp", disable=not progress)
            try:
                for fut in asyncio.as_completed(tasks):
                    c = await fut
                    bar.update(1)
                    if c.error:
                        bar.set_postfix(errors=sum(self.stats.errors.values()), retries=self.stats.retries)
            except BaseException:
                stop.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            finally:
                bar.close()
                self.stats.elapsed_s += time.monotonic() - t0
            return [t.result() for t in tasks]

    def complete_many(self, requests: list[dict], progress: bool = True) -> list[Completion]:
        """Answer every request (``{"messages", "temperature", "max_tokens", "sample_index"[, "seed",
        "prompt_version"]}``), in input order. Cached answers are returned without a request.

        Raises :class:`FatalLLMError` on a fatal endpoint error; every response finished before that is
        already committed to the cache.
        """
        for i, r in enumerate(requests):
            if "messages" not in r:
                raise UserError(f"Request {i} has no 'messages': {str(r)[:200]}")
        stop = threading.Event()
        try:
            out = _run_sync(lambda: self._many(list(requests), progress, stop), stop)
            self.last_completions = out
            return out
        except KeyboardInterrupt:
            stop.set()
            raise

    def list_models(self) -> list[str]:
        """Model ids the endpoint serves (a cheap reachability check)."""
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key(), max_retries=0, timeout=min(self.timeout, 10))
        try:
            return [m.id for m in client.models.list().data]
        except openai.APIConnectionError as e:
            raise FatalLLMError(f"Cannot reach the LLM endpoint {self.url}: {e.__class__.__name__}. Is the server "
                                f"running and the base_url right (it should end in /v1)?") from None
        finally:
            client.close()


def _fatal_message(status: int, url: str, model: str, key_env: str, e: Exception) -> str:
    body = str(getattr(e, "message", e))[:300]
    hint = {
        401: f"the API key was rejected: check ${key_env} (the value is never printed)",
        403: f"the API key has no access to this model: check ${key_env} and the model name",
        404: f"model {model!r} (or the path) is unknown at this endpoint: check the model name and that base_url ends in /v1",
        400: "the endpoint rejected the request as malformed: check the model name and sampling parameters",
        422: "the endpoint could not process the request parameters",
    }.get(status, "the endpoint refused the request")
    return f"LLM endpoint {url} answered HTTP {status} for model {model!r}: {hint}. Server said: {body}"


def distill(
    sentences: Sequence[dict],
    client: LLMClient,
    prompt_version: str = "metaie-v1",
    n_samples: int = 1,
    temperature: float = 1.0,
    max_tokens: int = 256,
    seed: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Responses rows, one per (sentence, sample): ``{"id", "text", "response", "model", "prompt_version",
    "sample_index", "finish_reason", "error"}``; ``response`` is None when the request failed.

    ``sentences`` are ``sentences.jsonl`` rows (``id``, ``text``). ``seed`` (optional) is sent as
    ``seed + sample_index`` for endpoints that honour it.

    >>> rows = distill([{"id": "s1", "text": "Tom left."}], client, "metaie-v1")   # doctest: +SKIP
    >>> rows[0]["response"]                                                        # doctest: +SKIP
    '- Person: Tom'
    """
    if n_samples < 1:
        raise UserError(f"n_samples must be >= 1, got {n_samples}.")
    for i, s in enumerate(sentences):
        if not isinstance(s, dict) or "text" not in s or "id" not in s:
            raise UserError(f"Sentence {i} lacks 'id' or 'text': {str(s)[:200]}. Use 01_sample_corpus's sentences.jsonl.")
    requests, meta = [], []
    for s in sentences:
        msgs = build_messages(prompt_version, s["text"])
        for k in range(n_samples):
            requests.append({"messages": msgs, "temperature": temperature, "max_tokens": max_tokens, "sample_index": k,
                             "prompt_version": prompt_version, "seed": None if seed is None else int(seed) + k})
            meta.append((s, k))
    out = client.complete_many(requests, progress=progress)
    rows = []
    for (s, k), c in zip(meta, out):
        rows.append({"id": s["id"], "text": s["text"], "response": c.text, "model": client.model,
                     "prompt_version": prompt_version, "sample_index": k, "finish_reason": c.finish_reason,
                     "error": c.error})
    return rows


def completions_table(completions: Sequence[Completion]) -> list[dict[str, Any]]:
    """One flat dict per completion (for a DataFrame / CSV): timings, usage, cached, error."""
    return [{k: v for k, v in asdict(c).items() if k != "text"} for c in completions]


def response_stats(rows: Sequence[dict]) -> dict[str, Any]:
    """Counts over responses rows: answered, failed (by reason), without a parsable line, label lines.

    >>> response_stats([{"response": "- A: b", "error": None}, {"response": "hi", "error": None},
    ...                 {"response": None, "error": "x"}])["no_parsable_line"]
    1
    """
    answered = [r for r in rows if r.get("response") is not None]
    n_lines = [count_label_lines(r["response"]) for r in answered]
    errors: dict[str, int] = {}
    for r in rows:
        if r.get("response") is None:
            reason = str(r.get("error") or "unknown").split(":")[0]
            errors[reason] = errors.get(reason, 0) + 1
    out = {
        "responses": len(rows),
        "answered": len(answered),
        "failed": len(rows) - len(answered),
        "no_parsable_line": sum(1 for n in n_lines if n == 0),
        "label_lines": sum(n_lines),
        "parsable_fraction": round(sum(1 for n in n_lines if n > 0) / len(answered), 4) if answered else 0.0,
        "finish_length": sum(1 for r in answered if r.get("finish_reason") == "length"),
    }
    out.update({f"failed_{k}": v for k, v in errors.items()})
    return out


def load_sentences(path: str | Path, limit: int = 0) -> list[dict]:
    """``sentences.jsonl`` rows from a run directory or the file itself (first ``limit`` if > 0)."""
    from metaie_utils.core.runs import upstream_file

    f = upstream_file(path, "sentences.jsonl")
    rows = read_jsonl(f)
    if not rows:
        raise UserError(f"{f} holds no sentences: nothing to distill. Re-run 01_sample_corpus (check its filter counts).")
    return rows[:limit] if limit and limit > 0 else rows
