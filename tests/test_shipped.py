"""The shipped distillation set: export from a stage-02 cache, replay in stage 02 without a teacher."""

from __future__ import annotations

import gzip
import json

import pytest

from metaie_utils.core.io import write_jsonl
from metaie_utils.llm import shipped
from metaie_utils.llm.client import Completion, ResponseCache, build_messages, cache_key
from metaie_utils.stages.distill import DistillConfig, run_distill

pytestmark = pytest.mark.unit

TEACHER = "local:qwen2.5-0.5b"  # identified by its pinned sha256: no download, no server needed here
SENTS = [{"id": f"news-{i}", "text": f"Tom Smith visited Paris on day {i} ."} for i in range(5)]


def _cache(tmp_path, n: int):
    """A stage-02 cache holding answers for the first ``n`` sentences, keyed exactly as stage 02 keys them."""
    cache = ResponseCache(tmp_path / "cache.sqlite")
    for s in SENTS[:n]:
        key = cache_key("qwen2.5-0.5b", "metaie-1shot-v1", build_messages("metaie-1shot-v1", s["text"]), 1.0, 96, 0, 0)
        cache.put(key, "qwen2.5-0.5b", "metaie-1shot-v1", 0,
                  Completion(text="- Person: Tom Smith\n- Location: Paris", finish_reason="stop", prompt_tokens=50,
                             completion_tokens=12))
    cache.close()
    write_jsonl(tmp_path / "sentences.jsonl", SENTS)
    return tmp_path / "cache.sqlite"


def test_export_is_the_cached_prefix_with_provenance_and_deterministic(tmp_path):
    cache = _cache(tmp_path, 3)
    out = tmp_path / "set.jsonl.gz"
    shipped.export(tmp_path / "sentences.jsonl", cache, TEACHER, out=out)
    s = shipped.load(out)
    assert [r["id"] for r in s.rows] == ["news-0", "news-1", "news-2"]
    p = s.provenance
    assert p["gguf_sha256"].startswith("1d9614638d18") and p["prompt_version"] == "metaie-1shot-v1"
    assert p["sampling"] == {"temperature": 1.0, "max_tokens": 96, "seed": 0, "n_samples": 1}
    assert p["parsable_fraction"] == 1.0 and p["sentences"] == 3 and p["prompt_messages"]
    first = out.read_bytes()
    shipped.export(tmp_path / "sentences.jsonl", cache, TEACHER, out=out)
    assert out.read_bytes() == first  # no churn in git when nothing changed


def test_restore_puts_the_set_back_into_a_cache_that_extends_it(tmp_path):
    """A new machine: restore the shipped set into an empty cache, answer one more sentence, export again:
    the old rows come back unchanged (same keys as the client's), the new one is appended, dates are kept."""
    cache = _cache(tmp_path, 3)
    out = tmp_path / "set.jsonl.gz"
    shipped.export(tmp_path / "sentences.jsonl", cache, TEACHER, out=out)
    old = shipped.load(out)
    fresh = tmp_path / "new" / "cache.sqlite"
    assert shipped.restore(fresh, TEACHER, out) == 3
    assert shipped.restore(fresh, TEACHER, out) == 0  # idempotent
    c = ResponseCache(fresh)
    key = cache_key("qwen2.5-0.5b", "metaie-1shot-v1", build_messages("metaie-1shot-v1", SENTS[3]["text"]), 1.0, 96, 0, 0)
    assert c.get(cache_key("qwen2.5-0.5b", "metaie-1shot-v1", build_messages("metaie-1shot-v1", SENTS[0]["text"]),
                           1.0, 96, 0, 0))["text"] == old.rows[0]["response"]
    c.put(key, "qwen2.5-0.5b", "metaie-1shot-v1", 0, Completion(text="- Person: Tom", finish_reason="stop"))
    c.close()
    out2 = tmp_path / "set2.jsonl.gz"
    shipped.export(tmp_path / "sentences.jsonl", fresh, TEACHER, out=out2)
    new = shipped.load(out2)
    assert new.rows[:3] == old.rows and new.rows[3]["id"] == "news-3"
    assert new.provenance["started"] == old.provenance["started"]
    with pytest.raises(shipped.UserError, match="sha256"):
        shipped.restore(tmp_path / "other.sqlite", "local:qwen2.5-1.5b", out)


def test_replay_stands_in_for_the_teacher_only_when_everything_matches(tmp_path):
    out = tmp_path / "set.jsonl.gz"
    shipped.export(tmp_path / "sentences.jsonl", _cache(tmp_path, 3), TEACHER, out=out)
    rows, note = shipped.replay(SENTS[:2], TEACHER, "metaie-1shot-v1", 1.0, 96, 0, 1, out)
    assert rows is not None and [r["id"] for r in rows] == ["news-0", "news-1"] and "replayed 2" in note
    assert rows[0]["response"].startswith("- Person") and rows[0]["error"] is None
    for args, why in [((TEACHER, "metaie-v1", 1.0, 96, 0), "prompt_version"),
                      ((TEACHER, "metaie-1shot-v1", 0.7, 96, 0), "temperature"),
                      ((TEACHER, "metaie-1shot-v1", 1.0, 64, 0), "max_tokens"),
                      (("local:smollm2-135m", "metaie-1shot-v1", 1.0, 96, 0), "sha256"),
                      (("gpt-3.5-turbo", "metaie-1shot-v1", 1.0, 96, 0), "sha256")]:
        rows, note = shipped.replay(SENTS[:2], *args, 1, out)
        assert rows is None and why in note, (args, note)
    rows, note = shipped.replay(SENTS, TEACHER, "metaie-1shot-v1", 1.0, 96, 0, 1, out)  # 2 sentences not shipped
    assert rows is None and "2 of 5" in note
    changed = [{**SENTS[0], "text": "Another text ."}]
    assert shipped.replay(changed, TEACHER, "metaie-1shot-v1", 1.0, 96, 0, 1, out)[0] is None


def test_stage_02_replays_without_starting_a_teacher(tmp_path, monkeypatch):
    out = tmp_path / "set.jsonl.gz"
    shipped.export(tmp_path / "sentences.jsonl", _cache(tmp_path, 5), TEACHER, out=out)

    def no_teacher(*a, **k):
        raise AssertionError("a replay must not start a teacher")

    monkeypatch.setattr("metaie_utils.llm.teacher.local_teacher", no_teacher)
    cfg = DistillConfig(input_dir=str(tmp_path / "sentences.jsonl"), teacher=TEACHER, distill_set=str(out), seed=0)
    res = run_distill(cfg, tmp_path / "run", progress=False)
    assert res["source"] == "shipped" and len(res["rows"]) == 5 and res["stats"]["requests"] == 0
    assert res["stats"]["replayed"] == 5 and res["stats"]["parsable_fraction"] == 1.0
    # tokens per replayed answer, not the total (a replay asks nothing, so "completed" is 0)
    assert 0 < res["stats"]["mean_completion_tokens"] == round(res["stats"]["completion_tokens"] / 5, 2)
    with pytest.raises(Exception, match="no such file"):
        run_distill(cfg.model_copy(update={"distill_set": str(tmp_path / "nope.gz")}), tmp_path / "run")


def test_a_file_that_is_not_a_shipped_set_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"id": "x"}) + "\n")
    with pytest.raises(Exception, match="provenance"):
        shipped.load(bad)


def test_the_committed_set_is_a_prefix_of_the_default_sampler():
    """The set in the repository: make run's sentences are its head (stage 01, seed 0, defaults)."""
    if not shipped.default_path().is_file():
        pytest.skip("no shipped set in this checkout")
    s = shipped.load()
    assert s.provenance["corpus"]["seed"] == 0 and s.provenance["sampling"]["seed"] == 0
    assert s.n_sentences >= 200 and s.provenance["parsable_fraction"] > 0.9
    assert len({r["id"] for r in s.rows}) == len(s.rows)


def test_the_committed_ner_set_asks_metaies_sentences_first():
    """The NER-distillation baseline's set: the same teacher and sampling on the same sentences, MetaIE's first."""
    p = shipped.path_for("ner-icl-v1")
    if not p.is_file() or not shipped.default_path().is_file():
        pytest.skip("no shipped sets in this checkout")
    ner, meta = shipped.load(p), shipped.load()
    assert ner.provenance["prompt_version"] == "ner-icl-v1" and ner.provenance["gguf_sha256"] == meta.provenance["gguf_sha256"]
    assert ner.provenance["sampling"] == meta.provenance["sampling"] and ner.provenance["parsable_fraction"] > 0.9
    assert [(r["id"], r["text"]) for r in ner.rows[:len(meta.rows)]] == [(r["id"], r["text"]) for r in meta.rows]
    assert shipped.path_for("metaie-1shot-v1") == shipped.default_path()


def test_make_runs_sentences_are_the_head_of_the_committed_set():
    """stage 01 on params/defaults.yaml (200 news sentences) must be replayable, or make run asks a teacher."""
    try:
        from metaie_utils.core.assets import news_corpus_path

        news_corpus_path()
    except Exception as e:  # asset not installed on this machine
        pytest.skip(f"news asset not installed: {e}")
    if not shipped.default_path().is_file():
        pytest.skip("no shipped set in this checkout")
    from metaie_utils.core.params import load_params, stage_config
    from metaie_utils.stages.sample import sample_corpus

    cfg = stage_config("01_sample_corpus", load_params())
    rows, _ = sample_corpus(cfg, progress=False)
    d = stage_config("02_distill_llm", load_params())
    got, note = shipped.replay(rows, d.teacher, d.prompt_version, d.temperature, d.max_tokens, d.seed, d.n_samples)
    assert got is not None, note


def test_answer_sets_through_the_cli(tmp_path, capsys):
    """`shipped export-answers` / `import-answers` move a teacher's cached answers between a cache and a file."""
    from metaie_utils.cli import main

    cache = ResponseCache(tmp_path / "icl.sqlite")
    cache.put("k1", "qwen2.5-0.5b", "icl-ner-v1", 0, Completion(text="- Person: Ann", finish_reason="stop"))
    cache.close()
    out = tmp_path / "answers.jsonl.gz"
    assert main(["shipped", "export-answers", "--cache", str(tmp_path / "icl.sqlite"), "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == 1
    assert main(["shipped", "import-answers", "--cache", str(tmp_path / "new.sqlite"), "--output", str(out)]) == 0
    assert "1 of the 1 answers" in capsys.readouterr().out
    assert ResponseCache(tmp_path / "new.sqlite").get("k1")["text"] == "- Person: Ann"
    assert main(["shipped", "export-answers", "--output", str(out)]) != 0
    assert "needs --cache" in capsys.readouterr().err


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    import os

    from metaie_utils.core import io as cio

    path = tmp_path / "answers.jsonl.gz"
    cio.atomic_write_bytes(path, b"old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        cio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl.gz"]


def test_atomic_write_gives_the_mode_a_plain_write_would(tmp_path):
    """mkstemp's tmp file is 0600: renamed into place, it made rewritten outputs unreadable to other users."""
    import os
    import stat

    from metaie_utils.core import io as cio

    old = os.umask(0o022)
    try:
        new = cio.atomic_write_bytes(tmp_path / "new.csv", b"x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.sh"
        kept.write_bytes(b"a")
        kept.chmod(0o750)
        assert stat.S_IMODE(cio.atomic_write_bytes(kept, b"b").stat().st_mode) == 0o750
    finally:
        os.umask(old)
