"""Unit tests of metaie_utils.assets on tiny synthetic specs (no pip, no big files)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from metaie_utils.cli import main
from metaie_utils.core import assets
from metaie_utils.core.assets import ASSETS, AssetError, AssetSpec, Source

pytestmark = pytest.mark.unit


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty asset cache and no offline flags."""
    d = tmp_path / "cache"
    monkeypatch.setenv("METAIE_CACHE_DIR", str(d))
    for v in assets.OFFLINE_ENV:
        monkeypatch.delenv(v, raising=False)
    return d


@pytest.fixture
def chunks(tmp_path) -> list[Path]:
    parts = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    paths = []
    for i, data in enumerate(parts):
        p = tmp_path / "src" / f"part{i:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths


def _concat_spec(chunks: list[Path], sha: str, alias: str = "tiny-gguf") -> AssetSpec:
    return AssetSpec(alias=alias, kind="gguf", packages=(), assembly="concat", description="tiny test model",
                     size_bytes=24, sources=tuple(Source(None, str(p)) for p in chunks), target="tiny.gguf",
                     sha256={"": sha})


def test_registry_has_the_aliases_the_makefile_uses():
    for alias in ["minilm-l6", "mpnet-base", "qwen2.5-0.5b", "smollm2-135m", "news", "teacher-server", "qwen2.5-1.5b"]:
        assert alias in ASSETS
    assert ASSETS["qwen2.5-1.5b"].default is False
    assert ASSETS["teacher-server"].kind == "package" and ASSETS["teacher-server"].no_deps is False
    for spec in ASSETS.values():
        assert all(len(h) == 64 for h in spec.sha256.values()), spec.alias


def test_concat_assembles_verifies_and_is_idempotent(cache, chunks, monkeypatch, capsys):
    expected = _sha(b"".join(p.read_bytes() for p in chunks))
    monkeypatch.setitem(ASSETS, "tiny-gguf", _concat_spec(chunks, expected))

    out = assets.install(["tiny-gguf"])["tiny-gguf"]
    assert out == cache / "assets" / "tiny-gguf" / "tiny.gguf"
    assert out.read_bytes() == b"GGUF" + b"a" * 10 + b"b" * 7 + b"c" * 3
    assert assets.asset_path("tiny-gguf") == out
    assert assets.gguf_path("tiny-gguf") == out
    assert assets.resolve_model("tiny-gguf") == str(out)
    stamp = json.loads((out.parent / assets.STAMP).read_text())
    assert stamp["sizes"] == {"": 24}

    # second call: nothing rebuilt (same inode, same mtime), and it says so
    before = out.stat()
    capsys.readouterr()
    assets.install(["tiny-gguf"])
    after = out.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert "already assembled" in capsys.readouterr().err

    # force rebuilds
    assets.install(["tiny-gguf"], force=True)
    assert out.stat().st_ino != before.st_ino


def test_sha_mismatch_names_file_and_both_hashes_and_leaves_nothing(cache, chunks, monkeypatch):
    wrong = "0" * 64
    actual = _sha(b"".join(p.read_bytes() for p in chunks))
    monkeypatch.setitem(ASSETS, "tiny-gguf", _concat_spec(chunks, wrong))
    with pytest.raises(AssetError) as e:
        assets.install(["tiny-gguf"])
    msg = str(e.value)
    assert wrong in msg and actual in msg and "tiny.gguf" in msg and "--force" in msg
    d = cache / "assets" / "tiny-gguf"
    assert list(d.iterdir()) == []  # no half file, no temp file, no stamp
    with pytest.raises(AssetError, match="assets install tiny-gguf"):
        assets.asset_path("tiny-gguf")


def test_truncated_file_after_install_is_not_reported_installed(cache, chunks, monkeypatch):
    monkeypatch.setitem(ASSETS, "tiny-gguf", _concat_spec(chunks, _sha(b"".join(p.read_bytes() for p in chunks))))
    out = assets.install(["tiny-gguf"])["tiny-gguf"]
    out.write_bytes(b"GGUF")  # a crash-like truncation
    assert not assets.is_installed("tiny-gguf")
    with pytest.raises(AssetError):
        assets.asset_path("tiny-gguf")
    assert assets.install(["tiny-gguf"])["tiny-gguf"].stat().st_size == 24  # repaired


def test_concat_unzip_strips_root_skips_excluded_and_pins_every_file(cache, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/config.json", b'{"a": 1}')
        z.writestr("model/sub/vocab.txt", b"[PAD]\nhello\n")
        z.writestr("model/desktop.ini", b"junk")
    blob = buf.getvalue()
    halves = [tmp_path / "z.001", tmp_path / "z.002"]
    halves[0].write_bytes(blob[:50])
    halves[1].write_bytes(blob[50:])
    spec = AssetSpec(alias="tiny-enc", kind="encoder", packages=(), assembly="concat_unzip", description="t",
                     size_bytes=1, sources=tuple(Source(None, str(h)) for h in halves), target="enc",
                     zip_root="model", exclude=("desktop.ini",),
                     sha256={"config.json": _sha(b'{"a": 1}'), "sub/vocab.txt": _sha(b"[PAD]\nhello\n")})
    monkeypatch.setitem(ASSETS, "tiny-enc", spec)
    out = assets.install(["tiny-enc"])["tiny-enc"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["config.json", "sub/vocab.txt"]
    assert assets.resolve_model("tiny-enc") == str(out)
    assert not (out.parent / "enc.zip").exists() and not (out.parent / ".tmp-enc.zip").exists()


def test_unpinned_extra_file_is_refused(cache, tmp_path, monkeypatch):
    src = tmp_path / "folder"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    spec = AssetSpec(alias="tiny-dir", kind="encoder", packages=(), assembly="link_dir", description="t",
                     size_bytes=2, sources=(Source(None, str(src)),), target="dir", sha256={"a.txt": _sha(b"a")})
    monkeypatch.setitem(ASSETS, "tiny-dir", spec)
    with pytest.raises(AssetError, match="unexpected: \\['b.txt'\\]"):
        assets.install(["tiny-dir"])
    (src / "b.txt").unlink()
    assert (assets.install(["tiny-dir"])["tiny-dir"] / "a.txt").read_bytes() == b"a"


def test_resolve_model_alias_path_and_hub_passthrough(cache, chunks, monkeypatch, tmp_path):
    monkeypatch.setitem(ASSETS, "tiny-gguf", _concat_spec(chunks, _sha(b"".join(p.read_bytes() for p in chunks))))
    assets.install(["tiny-gguf"])
    assert Path(assets.resolve_model("tiny-gguf")).is_file()
    assert assets.resolve_model(str(tmp_path)) == str(tmp_path)  # an existing local path is itself
    assert assets.resolve_model("roberta-large") == "roberta-large"  # online: Hub names pass through
    assert assets.resolve_model("some-org/not-cached-model") == "some-org/not-cached-model"


@pytest.mark.parametrize("flag", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_resolve_model_offline_unknown_hub_name_is_an_error(cache, monkeypatch, tmp_path, flag):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty HF cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv(flag, "1")
    with pytest.raises(AssetError) as e:
        assets.resolve_model("some-org/not-cached-model-xyz")
    msg = str(e.value)
    assert "some-org/not-cached-model-xyz" in msg and "network" in msg
    assert "minilm-l6" in msg and "qwen2.5-0.5b" in msg  # lists the offline aliases


def test_missing_alias_error_says_how_to_install(cache):
    with pytest.raises(AssetError, match=r"python -m metaie_utils assets install smollm2-135m` \(or make setup\)"):
        assets.asset_path("smollm2-135m")
    with pytest.raises(AssetError, match="Unknown asset 'nope'"):
        assets.install(["nope"])


def test_gguf_path_rejects_non_gguf_alias_and_missing_file(cache, tmp_path):
    with pytest.raises(AssetError, match="is a corpus, not a GGUF"):
        assets.gguf_path("news")
    with pytest.raises(AssetError, match="neither a known alias"):
        assets.gguf_path(tmp_path / "missing.gguf")
    f = tmp_path / "x.gguf"
    f.write_bytes(b"GGUF")
    assert assets.gguf_path(f) == f


def test_cli_list_and_path(cache, chunks, monkeypatch, capsys):
    monkeypatch.setitem(ASSETS, "tiny-gguf", _concat_spec(chunks, _sha(b"".join(p.read_bytes() for p in chunks))))
    assert main(["assets", "list"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["minilm-l6"] == ["encoder", "no"]  # empty cache
    assert rows["tiny-gguf"] == ["gguf", "no"]
    assert rows["qwen2.5-1.5b"][0] == "gguf"

    assert main(["assets", "path", "tiny-gguf"]) == 2  # not installed: one paragraph, exit 2
    assert "assets install tiny-gguf" in capsys.readouterr().err

    assert main(["assets", "install", "tiny-gguf"]) == 0
    capsys.readouterr()
    assert main(["assets", "path", "tiny-gguf"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "assets" / "tiny-gguf" / "tiny.gguf")
    assert main(["assets", "list"]) == 0
    assert any(line.startswith("tiny-gguf") and " yes " in line for line in capsys.readouterr().out.splitlines())
