"""The on-disk cache of converted backbones: where it lives, atomic builds into it, source-file hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """The folder holding converted backbones: ``$NEWSCLF_CACHE`` or ``~/.cache/newsclf``."""
    env = os.environ.get("NEWSCLF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "newsclf"


def _writable_cache() -> Path:
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise OSError(
            f"cannot write converted backbones to the cache folder {root} ({exc.strerror or exc}); "
            "expected a writable folder: set NEWSCLF_CACHE to one, e.g. NEWSCLF_CACHE=/tmp/newsclf-cache"
        ) from exc
    return root


def _build_cached(name: str, build, marker: str = "config.json") -> Path:
    """Return ``cache/name``, building it with ``build(tmp_dir)`` into a temp dir renamed into place.

    The rename is atomic, so a crash or an error mid-conversion never leaves a half-written model where
    a later run would pick it up. ``marker`` is the file whose presence means a finished entry.
    """
    existing = cache_dir() / name
    if (existing / marker).is_file():
        return existing
    root = _writable_cache()
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{name}-"))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same conversion first; its copy is identical.
            if not (final / marker).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]
