"""Fetching the original benchmark files: archive at a pinned commit -> our layout (a local archive, no network)."""

import io
import tarfile

import pytest

from metaie_utils.cli import main
from metaie_utils.core import datasources as D

pytestmark = pytest.mark.unit


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_extracts_files_globs_and_inner_archives(tmp_path):
    src = D.Source("demo", "o/r", "abc", files={"a/x.txt": "demo/x.txt", "g/*.json": "demo/g/"},
                   inner={"in/arch.tar.gz": {"T.TXT": "demo/T.TXT"}})
    inner = _tar({"top/T.TXT": b"inner", "top/skip": b"no"})
    outer = _tar({"r-abc/a/x.txt": b"hello", "r-abc/g/1.json": b"{}", "r-abc/g/2.json": b"[]",
                  "r-abc/other.txt": b"no", "r-abc/in/arch.tar.gz": inner})
    (tmp_path / "o_r.tar.gz").write_bytes(outer)
    got = D.fetch_source(src, tmp_path / "data", url_template=f"file://{tmp_path}/o_r.tar.gz")
    assert sorted(got) == ["demo/T.TXT", "demo/g/1.json", "demo/g/2.json", "demo/x.txt"]
    assert (tmp_path / "data/demo/x.txt").read_bytes() == b"hello"
    assert (tmp_path / "data/demo/T.TXT").read_bytes() == b"inner"
    assert not (tmp_path / "data/other.txt").exists()


def test_fetch_refuses_incomplete_archive(tmp_path):
    src = D.Source("demo", "o/r", "abc", files={"a/x.txt": "demo/x.txt", "a/y.txt": "demo/y.txt"})
    (tmp_path / "a.tar.gz").write_bytes(_tar({"r-abc/a/x.txt": b"1"}))
    with pytest.raises(RuntimeError, match="every expected file"):
        D.fetch_source(src, tmp_path / "d", url_template=f"file://{tmp_path}/a.tar.gz")


def test_unreachable_source_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="Could not download"):
        D.fetch_source(D.SOURCES[0], tmp_path, url_template=f"file://{tmp_path}/missing.tar.gz")


def test_every_shared_source_is_present_here():
    status = D.check()
    assert all(status.values()), status


def test_data_check_cli(capsys):
    assert main(["data", "check"]) == 0
    assert "conll2003" in capsys.readouterr().out
