"""Content and perceptual hashes, and the grouping of (near-)duplicate images.

``dhash64`` is a 64-bit difference hash of a grayscale image (9x8 area-resized, one bit per
horizontal gradient sign). Two images whose hashes differ in at most a few bits look alike.
``near_duplicate_groups`` finds all pairs within a Hamming radius without comparing every pair:
the hash is cut into ``radius + 1`` bands, and by the pigeonhole principle two hashes within the
radius agree exactly on at least one band, so only images sharing a band value are compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

HASH_BITS = 64


def dhash64(gray: np.ndarray) -> int:
    """64-bit difference hash of a 2-D uint8 image (any size).

    Example::

        >>> dhash64(np.tile(np.arange(9, dtype=np.uint8) * 20, (8, 1)))  # rising left to right
        0
    """
    from PIL import Image

    if gray.ndim != 2:
        raise ValueError(f"dhash64 needs a 2-D grayscale array, got shape {gray.shape}")
    small = np.asarray(Image.fromarray(gray).resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, :-1] > small[:, 1:]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def _popcount64(values: np.ndarray) -> np.ndarray:
    """Bit count of each uint64 in ``values``."""
    as_bytes = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return [g for g in out.values() if len(g) > 1]


def _bands(radius: int) -> list[tuple[int, int]]:
    """Cut 64 bits into ``radius + 1`` contiguous (shift, width) bands."""
    n = radius + 1
    edges = np.linspace(0, HASH_BITS, n + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1] - edges[i])) for i in range(n)]


def near_duplicate_pairs(hashes: Sequence[int], radius: int = 4) -> set[tuple[int, int]]:
    """All index pairs ``(i, j)``, ``i < j``, whose hashes differ in at most ``radius`` bits.

    Runs in about O(n · bucket size) instead of O(n²) (multi-index hashing).

    >>> sorted(near_duplicate_pairs([0b0, 0b1, 0xFFFF << 40], radius=2))
    [(0, 1)]
    """
    if radius < 0 or radius >= HASH_BITS:
        raise ValueError(f"radius must be in 0..{HASH_BITS - 1}, got {radius}")
    values = np.array([h & (2**64 - 1) for h in hashes], dtype=np.uint64)
    pairs: set[tuple[int, int]] = set()
    for shift, width in _bands(radius):
        keys = (values >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            idx = order[s:e]
            _pairs_in_bucket(idx, values[idx], radius, pairs)
    return pairs


def _pairs_in_bucket(idx: np.ndarray, vals: np.ndarray, radius: int, pairs: set[tuple[int, int]]) -> None:
    """Compare every pair in one bucket (vectorised row by row)."""
    for k in range(len(idx) - 1):
        dist = _popcount64(vals[k + 1 :] ^ vals[k])
        for j in np.flatnonzero(dist <= radius):
            a, b = int(idx[k]), int(idx[k + 1 + j])
            pairs.add((min(a, b), max(a, b)))


def group_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size ≥ 2) of the graph on ``range(n)`` with edges ``pairs``."""
    uf = _UnionFind(n)
    for i, j in pairs:
        uf.union(i, j)
    return sorted((sorted(g) for g in uf.groups()), key=lambda g: g[0])


def exact_groups(digests: Sequence[str | None]) -> list[list[int]]:
    """Indices grouped by equal content digest (``None`` entries, i.e. unread files, are ignored)."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        if d is not None:
            by_digest[d].append(i)
    return sorted((g for g in by_digest.values() if len(g) > 1), key=lambda g: g[0])


def near_groups(
    hashes: Sequence[int | None],
    digests: Sequence[str | None],
    radius: int = 4,
    signatures: np.ndarray | None = None,
    min_corr: float = 0.98,
) -> list[list[int]]:
    """Groups of images within ``radius`` bits of dHash that are not all byte-identical copies.

    Chest X-rays all look alike at 9x8 pixels, so a dHash match is only a candidate: when
    ``signatures`` (one row per image, e.g. a 32x32 gray thumbnail) are given, a pair must also
    correlate ≥ ``min_corr`` (on the real X-ray collections, true copies score ≥ 0.99 and
    different patients mostly < 0.95).
    """
    valid = [i for i, h in enumerate(hashes) if h is not None]
    pairs = near_duplicate_pairs([hashes[i] for i in valid], radius)  # type: ignore[misc]
    if signatures is not None and pairs:
        sig = np.asarray(signatures, dtype=np.float32)[valid].reshape(len(valid), -1)
        sig = (sig - sig.mean(1, keepdims=True)) / (sig.std(1, keepdims=True) + 1e-6)
        arr = np.array(sorted(pairs))
        corr = np.einsum("ij,ij->i", sig[arr[:, 0]], sig[arr[:, 1]]) / sig.shape[1]
        pairs = {(int(a), int(b)) for a, b in arr[corr >= min_corr]}
    groups = group_pairs(len(valid), pairs)
    out = []
    for g in groups:
        members = [valid[i] for i in g]
        if len({digests[i] for i in members}) > 1:
            out.append(members)
    return out
