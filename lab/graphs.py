"""Follow graphs as arrays: real edge lists read from files, and seeded synthetic power-law graphs.

An ``EdgeList`` is what ``raygram import`` loads and what the simulation reads:
edge ``k`` means "``src[k]`` follows ``dst[k]``", with node ids dense
(``0 .. nodes-1``) and ``ids[i]`` the id node ``i`` had in the file. Edges are
sorted by (follower, followee), with no self-loops and no duplicates.

Files (SNAP, Network Repository, MUSAE-style CSV): one edge per line, two
integer ids separated by whitespace or a comma, optionally followed by a
weight and a timestamp (ignored); ``#`` and ``%`` start comment lines; the
first non-comment line may be a header of names (``id_1,id_2``); a Matrix
Market file (``%%MatrixMarket`` banner) has a size line after its comments,
which is not an edge. A gzip file is recognised by its first bytes, whatever
its name. Undirected graphs (``directed=False``, which every data set of
mutual friendships is) become a follow each way. A line that is none of
these is reported with its number and skipped, or, with ``strict``, refused.

The file streams through in chunks that numpy converts at once while they
are regular (the 289k-line ``musae-github.csv`` reads in about 0.3 s); a
chunk with a comment or a bad line is read line by line instead, at about a
million lines a second, so that every bad line can be named.

``synthetic`` makes a Chung-Lu style graph with numpy: every follow picks
its followee by a power law over a random ranking of the accounts (rank
``x`` drawn with density ``x ** (-1 / (exponent - 1))``, the weights of Goh
et al.'s static model, which igraph's ``Static_Power_Law`` uses too, without
its finite-size correction, which would cap the hubs), and its follower by
an independent ranking with the same exponent: followers and followings are
both heavy-tailed and uncorrelated. Self-loops and pairs drawn twice are
dropped and drawn again until the graph has ``round(n * mean_degree)``
follows, so hubs keep what the exponent gives them (at exponent 2.1, the
largest has about a fifth of all accounts as followers at 37,700 accounts,
as in ``musae-github``). The same ``(n, exponent, seed, mean_degree)`` gives
the same graph with the same numpy. 10 million accounts and 100 million
follows take about 30 s and 2.7 GB here (2 busy cores).
"""

from __future__ import annotations

import gzip
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
EXTRA_COLUMNS = 2  # a weight and a timestamp may follow the two ids
SHOWN_CHARS = 80  # how much of a bad line a report quotes
CHUNK_BYTES = 16 << 20  # file bytes parsed at a time (plus the rest of the last line)
SYNTHETIC_CHUNK = 8_000_000  # follows drawn at a time: bounds the temporary arrays
SYNTHETIC_ROUNDS = 20  # draw rounds: each draws what is missing, scaled by the last round's share of new pairs


class EdgeListError(ValueError):
    """An edge list that cannot be read: a bad line under ``strict`` (its number is in the message), or no edges."""


@dataclass
class EdgeList:
    """Edge ``k``: node ``src[k]`` follows node ``dst[k]``; nodes are ``0 .. nodes-1``, ``ids`` their file ids."""

    src: np.ndarray
    dst: np.ndarray
    nodes: int
    skipped: list[tuple[int, str]]  # (line number, why): bad lines left out
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    self_loops: int = 0  # edges from a node to itself, left out
    duplicates: int = 0  # follows given more than once (or both ways of an undirected edge), counted once

    def __len__(self) -> int:
        return len(self.src)


def _open(path: Path) -> BinaryIO:
    """The file's bytes, decompressed if they start like gzip."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else path.open("rb")  # type: ignore[return-value]


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


_SEPARATORS = bytes.maketrans(b",\t\r\v\f", b"     ")
SPACE, NEWLINE = 32, 10


class _Reader:
    """One pass over a file: the ids of its edges, and the bad lines.

    The opening lines (comments, a header, a Matrix Market banner and size line) are read one by one.
    The rest goes in chunks of whole lines: a chunk with no comment in which every line has the same
    number of columns is converted by numpy at once; any other chunk, or one numpy refuses, is read
    line by line, which names the bad lines.
    """

    def __init__(self, path: Path, strict: bool) -> None:
        self.path, self.strict = path, strict
        self.ends: list[np.ndarray] = []  # (k, 2) arrays of (follower, followee) file ids
        self.skipped: list[tuple[int, str]] = []

    def bad(self, number: int, why: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
        if self.strict:
            raise EdgeListError(f"{self.path}, line {number}: {why}: {shown!r}")
        self.skipped.append((number, f"{why}: {shown!r}"))

    def read(self) -> None:
        with _open(self.path) as stream:
            number = self._opening(stream)
            if number is None:
                return
            while chunk := stream.read(CHUNK_BYTES):
                if not chunk.endswith(b"\n"):
                    chunk += stream.readline()
                self._chunk(chunk, number)
                number += chunk.count(b"\n")

    def _opening(self, stream: BinaryIO) -> int | None:
        """Read up to the first edge line (included); the number of the line after it, or None at the end."""
        matrix_market = size_line = past_header = False
        for number, line in enumerate(iter(stream.readline, b""), 1):
            fields = line.translate(_SEPARATORS).split()
            if number == 1 and line.lower().startswith(b"%%matrixmarket"):
                matrix_market = size_line = True
                continue
            if not fields or fields[0][:1] in (b"#", b"%"):
                continue
            if size_line:
                size_line = False
                if not (len(fields) == 3 and all(f.isdigit() for f in fields)):
                    self.bad(number, "expected the Matrix Market size line (rows, columns, entries)", line)
                continue
            if not past_header and not matrix_market and not any(_is_number(f) for f in fields):
                past_header = True  # a header of column names, once, before any edge
                continue
            past_header = True
            self._lines([line], number)
            return number + 1
        return None

    def _chunk(self, chunk: bytes, first_number: int) -> None:
        text = chunk.translate(_SEPARATORS)
        if b"#" not in text and b"%" not in text:
            pairs = _regular(text)
            if pairs is not None:
                self.ends.append(pairs)
                return
        self._lines(chunk.split(b"\n"), first_number)

    def _lines(self, lines: list[bytes], first_number: int) -> None:
        pairs = array("q")
        append = pairs.append
        for number, line in enumerate(lines, first_number):
            fields = line.translate(_SEPARATORS).split()
            if not fields or fields[0][:1] in (b"#", b"%"):
                continue
            if not 2 <= len(fields) <= 2 + EXTRA_COLUMNS:
                self.bad(number, f"expected two ids and at most {EXTRA_COLUMNS} more columns", line)
                continue
            try:
                a, b = int(fields[0]), int(fields[1])
            except ValueError:
                self.bad(number, "an id is not an integer", line)
                continue
            if len(fields) > 2 and not all(_is_number(f) for f in fields[2:]):
                self.bad(number, "a weight or timestamp column is not a number", line)
                continue
            append(a)
            append(b)
        if pairs:
            self.ends.append(np.frombuffer(pairs, dtype=np.int64).reshape(-1, 2))


def _regular(text: bytes) -> np.ndarray | None:
    """The (follower, followee) ids of a chunk whose every non-blank line has the same 2 to 4 numeric columns;
    None if it has not (then the chunk is read line by line)."""
    chars = np.frombuffer(text, dtype=np.uint8)
    in_token = (chars != SPACE) & (chars != NEWLINE)
    starts = np.flatnonzero(in_token[1:] & ~in_token[:-1]) + 1
    if len(chars) and in_token[0]:
        starts = np.concatenate([[0], starts])
    line_ends = np.flatnonzero(chars == NEWLINE)
    if not len(line_ends) or line_ends[-1] != len(chars) - 1:
        line_ends = np.append(line_ends, len(chars))
    per_line = np.diff(np.searchsorted(starts, line_ends), prepend=0)
    per_line = per_line[per_line > 0]
    if not len(per_line):
        return np.empty((0, 2), dtype=np.int64)
    columns = int(per_line[0])
    if not 2 <= columns <= 2 + EXTRA_COLUMNS or np.any(per_line != columns):
        return None
    tokens = np.array(text.split()).reshape(-1, columns)
    try:
        pairs = tokens[:, :2].astype(np.int64)
        if columns > 2:
            tokens[:, 2:].astype(np.float64)
    except ValueError:
        return None
    return pairs


def read_edge_list(path: Path, *, directed: bool, strict: bool = False) -> EdgeList:
    """Read an edge list file (formats in the module docstring); raises ``EdgeListError`` as it says."""
    path = Path(path)
    reader = _Reader(path, strict)
    reader.read()
    pairs = np.concatenate(reader.ends) if reader.ends else np.empty((0, 2), dtype=np.int64)
    if not len(pairs):
        bad = f" ({len(reader.skipped)} bad lines)" if reader.skipped else ""
        raise EdgeListError(f"{path}: no edges found{bad}")
    ids, dense = np.unique(pairs, return_inverse=True)
    dense = dense.reshape(-1, 2).astype(np.int32 if len(ids) < 2**31 else np.int64)
    src, dst = dense[:, 0], dense[:, 1]
    if not directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    keep = src != dst
    edges = _from_keys(_distinct(src[keep].astype(np.int64) * len(ids) + dst[keep]), len(ids))
    edges.ids, edges.skipped = ids, reader.skipped
    edges.self_loops = int(np.count_nonzero(pairs[:, 0] == pairs[:, 1]))
    edges.duplicates = int(np.count_nonzero(keep)) - len(edges)
    return edges


def _from_keys(keys: np.ndarray, nodes: int) -> EdgeList:
    """Edges from sorted distinct keys ``follower * nodes + followee`` (split a slice at a time: no big temporaries)."""
    kind = np.int32 if nodes < 2**31 else np.int64
    src, dst = np.empty(len(keys), dtype=kind), np.empty(len(keys), dtype=kind)
    for start in range(0, len(keys), SYNTHETIC_CHUNK):
        part = slice(start, start + SYNTHETIC_CHUNK)
        src[part], dst[part] = np.divmod(keys[part], nodes)
    return EdgeList(src=src, dst=dst, nodes=nodes, skipped=[])


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted without repeats (sort and mask: ``np.unique`` is several times slower on large integer arrays)."""
    keys.sort()
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def _ranks(rng: np.random.Generator, size: int, n: int, exponent: float) -> np.ndarray:
    """``size`` ranks in ``0 .. n-1`` drawn with density ``x ** -a`` over ``[1, n + 1)``, ``a = 1 / (exponent - 1)``.

    The inverse of the continuous distribution function: no search over a table of ``n`` weights.
    """
    a = 1.0 / (exponent - 1.0)
    u = rng.random(size)
    if abs(a - 1.0) < 1e-9:
        x = np.power(n + 1.0, u)
    else:
        top = (n + 1.0) ** (1.0 - a) - 1.0
        x = np.power(1.0 + u * top, 1.0 / (1.0 - a))
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def synthetic(n: int, exponent: float, seed: int, mean_degree: float = 10) -> EdgeList:
    """A seeded power-law follow graph of ``n`` accounts and ``round(n * mean_degree)`` follows (module docstring)."""
    if n < 2:
        raise ValueError("a graph needs at least two accounts")
    if exponent <= 1:
        raise ValueError("the power-law exponent must be above 1")
    if mean_degree <= 0:
        raise ValueError("the mean degree must be positive")
    rng = np.random.default_rng(seed)
    kind = np.int32 if n < 2**31 else np.int64
    followee_at_rank = rng.permutation(n).astype(kind)
    follower_at_rank = rng.permutation(n).astype(kind)
    target = min(round(n * mean_degree), n * (n - 1))
    keys = np.empty(0, dtype=np.int64)
    new_share = 1.0  # of the last round's draws, the share that were new follows
    for _ in range(SYNTHETIC_ROUNDS):
        missing = target - len(keys)
        if missing <= 0:
            break
        draws = min(int(missing / new_share) + 16, 4 * missing + 1024)
        drawn = []
        for size in _chunks(draws):
            src = follower_at_rank[_ranks(rng, size, n, exponent)]
            dst = followee_at_rank[_ranks(rng, size, n, exponent)]
            keep = src != dst
            drawn.append(_distinct(src[keep].astype(np.int64) * n + dst[keep]))
        before = len(keys)
        keys = _distinct(np.concatenate([keys, *drawn]))
        new_share = max((len(keys) - before) / draws, 0.01)
    if len(keys) > target:  # the last round overshot: drop follows at random
        keys = np.delete(keys, rng.choice(len(keys), len(keys) - target, replace=False))
    edges = _from_keys(keys, n)
    edges.ids = np.arange(n, dtype=np.int64)
    return edges


def _chunks(total: int) -> Iterator[int]:
    while total > 0:
        size = min(total, SYNTHETIC_CHUNK)
        yield size
        total -= size
