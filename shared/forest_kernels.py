"""The compiled forest's two loops: path lengths (the score) and isolation gains (the attribution).

Each is plain Python over flat arrays, compiled by numba when it can be imported (the
``*_compiled`` names are then the compiled functions, else ``None``); see
:mod:`shared.forest` for the layout of the arrays and why the order of operations matters.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# numba caches compiled code beside the module by default; an image whose site-packages is
# read-only needs another place, so pick a writable one unless the operator chose.
os.environ.setdefault(
    "NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vehicle-anomaly-numba")
)

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None  # type: ignore[assignment]  # optional: the NumPy paths serve without it


def _depths_python(
    rows: npt.NDArray[np.float32] | Matrix,
    feature: IntArray,
    threshold: Matrix,
    child: IntArray,
    value: Matrix,
    roots: IntArray,
    depths: IntArray,
    out: Matrix,
) -> None:
    # Tree by tree keeps one tree's nodes in cache; each row still sums its trees in order.
    # Siblings are adjacent (right = left + 1) and a leaf points at itself with an infinite
    # threshold, so every row takes exactly the tree's depth in steps, with no branch; eight
    # rows walk side by side so the processor overlaps their chains of dependent loads
    # (eight against four: a third less time for a batch, the walk being bound by how many
    # loads are in flight, not by the work). The rows left over (all of them below eight
    # rows, as for one record) walk four trees side by side instead, for the same overlap,
    # and add the four leaves in tree order.
    out[:] = 0.0
    n = rows.shape[0]
    blocked = n - n % 8
    for t in range(roots.shape[0]):
        root = roots[t]
        steps = depths[t]
        i = 0
        while i < blocked:  # eight independent walks side by side
            a = b = c = d = e = f = g = h = root
            for _ in range(steps):
                a = child[a] + (np.float32(rows[i, feature[a]]) > threshold[a])
                b = child[b] + (np.float32(rows[i + 1, feature[b]]) > threshold[b])
                c = child[c] + (np.float32(rows[i + 2, feature[c]]) > threshold[c])
                d = child[d] + (np.float32(rows[i + 3, feature[d]]) > threshold[d])
                e = child[e] + (np.float32(rows[i + 4, feature[e]]) > threshold[e])
                f = child[f] + (np.float32(rows[i + 5, feature[f]]) > threshold[f])
                g = child[g] + (np.float32(rows[i + 6, feature[g]]) > threshold[g])
                h = child[h] + (np.float32(rows[i + 7, feature[h]]) > threshold[h])
            out[i] += value[a]
            out[i + 1] += value[b]
            out[i + 2] += value[c]
            out[i + 3] += value[d]
            out[i + 4] += value[e]
            out[i + 5] += value[f]
            out[i + 6] += value[g]
            out[i + 7] += value[h]
            i += 8
    n_trees = roots.shape[0]
    # Rows may be float64: each value is cast to float32 (as numpy's astype rounds, and
    # beyond float32's range to an infinity, without numpy's warning) before comparing.
    row = np.empty(rows.shape[1], dtype=np.float32)
    for i in range(blocked, n):
        for j in range(rows.shape[1]):
            row[j] = np.float32(rows[i, j])
        total = 0.0
        t = 0
        while t + 4 <= n_trees:  # a leaf stays put, so the deepest of the four sets the steps
            a = roots[t]
            b = roots[t + 1]
            c = roots[t + 2]
            d = roots[t + 3]
            for _ in range(max(depths[t], depths[t + 1], depths[t + 2], depths[t + 3])):
                a = child[a] + (row[feature[a]] > threshold[a])
                b = child[b] + (row[feature[b]] > threshold[b])
                c = child[c] + (row[feature[c]] > threshold[c])
                d = child[d] + (row[feature[d]] > threshold[d])
            total += value[a]
            total += value[b]
            total += value[c]
            total += value[d]
            t += 4
        while t < n_trees:
            node = roots[t]
            for _ in range(depths[t]):
                node = child[node] + (row[feature[node]] > threshold[node])
            total += value[node]
            t += 1
        out[i] = total


depths_compiled: Any = (
    numba.njit(cache=True, nogil=True, boundscheck=False)(_depths_python) if numba else None
)


def gains_python(
    rows: npt.NDArray[np.float32],
    feature: IntArray,
    threshold: Matrix,
    child: IntArray,
    log_samples: Matrix,
    value: Matrix,
    expected: float,
    roots: IntArray,
    depths: IntArray,
    out: Matrix,
) -> None:
    # Each split on a row's path narrows the training samples that share its branch from
    # n_parent to n_child: the split's feature is credited log(n_parent / n_child). A tree's
    # credits are then scaled to how much shorter than expected the row's path in it was,
    # (c(max_samples) - path length), so trees that isolated the row early speak loudest and
    # trees that did not speak not at all. A row no tree isolated early keeps plain credits.
    out[:] = 0.0
    n_features = out.shape[1]
    tree_gain = np.zeros(n_features, dtype=np.float64)
    plain = np.zeros(n_features, dtype=np.float64)
    for i in range(rows.shape[0]):
        plain[:] = 0.0
        weighted_total = 0.0
        for t in range(roots.shape[0]):
            tree_gain[:] = 0.0
            total = 0.0
            node = roots[t]
            for _ in range(depths[t]):
                column = feature[node]
                nxt = child[node] + (rows[i, column] > threshold[node])
                if nxt == node:  # a leaf points at itself
                    break
                gain = log_samples[node] - log_samples[nxt]
                tree_gain[column] += gain
                total += gain
                node = nxt
            shortfall = expected - value[node]
            for column in range(n_features):
                plain[column] += tree_gain[column]
            if shortfall > 0.0 and total > 0.0:
                scale = shortfall / total
                for column in range(n_features):
                    out[i, column] += tree_gain[column] * scale
                weighted_total += shortfall
        if weighted_total == 0.0:
            for column in range(n_features):
                out[i, column] = plain[column]


gains_compiled: Any = (
    numba.njit(cache=True, nogil=True, boundscheck=False)(gains_python) if numba else None
)
