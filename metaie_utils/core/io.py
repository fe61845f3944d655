"""File helpers every layer uses: JSON Lines, atomic writes, sha256 (one implementation each).

>>> import tempfile; p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
>>> sha256_file(p)[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from metaie_utils.core.errors import UserError


def sha256_file(path: str | Path, desc: str | None = None) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks; a tqdm bar for files over 64 MB (``desc`` names it)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    bar = None
    if size > (64 << 20):
        from tqdm.auto import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc=desc or f"sha256 {path.name}", leave=False)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return h.hexdigest()



def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file (blank lines skipped), with the line number in errors."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n} is not valid JSON ({e.msg}). Fix or delete that line.") from None
    return rows


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a tmp file of its own in the same folder, then a rename.

    The tmp name is unique per call, so two processes writing the same file (parallel few-shot workers) never
    move each other's tmp file away; the last rename wins and a reader never sees half a file. The data is
    fsync'ed before the rename, so a crash leaves the old file or the new one, never an empty one. The file gets
    the mode an ``open(path, "w")`` would give it: the old file's, else 0666 less the umask (``mkstemp``'s tmp
    file is 0600, which made every rewritten output unreadable to the machine's other users).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows atomically (tmp file + rename)."""
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
