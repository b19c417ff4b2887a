"""A compiled IsolationForest scorer that gives scikit-learn's scores, bit for bit.

scikit-learn's ``decision_function`` dispatches each tree through joblib, so one row costs
about as much as a thousand. ``CompiledForest`` flattens the fitted trees once per model
load into a few arrays and walks them in one compiled loop (numba), or, where numba cannot
be imported, with NumPy: every tree at once for small batches, each tree's own Cython
``apply`` for large ones.

Exactness rests on doing what scikit-learn does in the same order: rows are cast to
float32 before comparing with the (float64) thresholds; each node's contribution is
``(depth + c(n_node_samples)) - 1.0``; contributions are summed tree by tree in order; then
``-(2 ** -(depths / (n_trees * c(max_samples)))) - offset_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from shared.forest_kernels import depths_compiled, gains_compiled, gains_python
from shared.sklearn_compat import (
    average_path_length,
    average_path_length_per_tree,
    decision_path_lengths,
    max_features,
    max_samples,
)

Matrix = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

SMALL_BATCH = 32  # below this, the NumPy fallback walks all trees at once
FEW_ROWS = 4  # below this, float64 rows go to the compiled kernel uncast (too few for a block)


def _sibling_order(left: IntArray, right: IntArray) -> IntArray:
    """Node ids in breadth-first order, each node's two children next to each other."""
    order = [0]
    for node in order:  # the list grows as it is walked
        if left[node] != -1:
            order.append(int(left[node]))
            order.append(int(right[node]))
    return np.asarray(order, dtype=np.intp)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledForest:
    """The trees of a fitted ``IsolationForest`` as flat arrays, scored without scikit-learn."""

    feature: IntArray  # per node: the column of the full feature vector it splits on
    threshold: Matrix
    child: IntArray  # per node: global index of the left child (right = left + 1); a leaf: itself
    value: Matrix  # per node: (depth + c(n_node_samples)) - 1.0, used at leaves
    roots: IntArray
    sklearn_to_flat: IntArray  # scikit-learn's node id (plus the tree's base) -> flat index
    denominator: float
    offset: float
    n_features: int
    depths: IntArray  # per tree: its depth, the number of steps from root to any leaf
    estimators: tuple[Any, ...]  # the fitted trees, for the per-tree ``apply`` path
    estimator_features: tuple[IntArray, ...]
    subsample_features: bool
    log_samples: Matrix  # per node: log of the training samples that reached it
    expected_path: float  # c(max_samples): a tree's average path length

    @classmethod
    def from_sklearn(cls, model: IsolationForest) -> CompiledForest:
        """Flatten a fitted IsolationForest; call once per model load."""
        features, thresholds, children, values, roots, renumbered = [], [], [], [], [], []
        samples = []
        tree_depths: list[int] = []
        base = 0
        for tree, columns, path_lengths, average_lengths in zip(
            model.estimators_,
            model.estimators_features_,
            decision_path_lengths(model),
            average_path_length_per_tree(model),
            strict=True,
        ):
            t = tree.tree_
            order = _sibling_order(t.children_left, t.children_right)
            new_index = np.empty_like(order)
            new_index[order] = np.arange(order.shape[0])
            left = t.children_left[order]
            leaf = left == -1
            columns = np.asarray(columns, dtype=np.intp)
            features.append(
                np.where(leaf, 0, columns[np.maximum(t.feature[order], 0)]).astype(np.intp)
            )
            thresholds.append(t.threshold[order].astype(np.float64))
            own = np.arange(order.shape[0]) + base
            children.append(
                np.where(leaf, own, new_index[np.maximum(left, 0)] + base).astype(np.intp)
            )
            thresholds[-1][leaf] = np.inf
            node_values = np.asarray(path_lengths, dtype=np.float64) + average_lengths - 1.0
            values.append(node_values[order])
            samples.append(np.log(np.maximum(t.n_node_samples[order], 1).astype(np.float64)))
            roots.append(base)
            renumbered.append(new_index + base)
            base += t.node_count
            tree_depths.append(int(t.max_depth))
        denominator = float(len(model.estimators_) * average_path_length([max_samples(model)])[0])
        forest = cls(
            feature=np.concatenate(features),
            threshold=np.concatenate(thresholds),
            child=np.concatenate(children),
            value=np.concatenate(values),
            roots=np.asarray(roots, dtype=np.intp),
            sklearn_to_flat=np.concatenate(renumbered).astype(np.intp),
            denominator=denominator,
            offset=float(model.offset_),
            n_features=int(model.n_features_in_),
            depths=np.asarray(tree_depths, dtype=np.intp),
            estimators=tuple(model.estimators_),
            estimator_features=tuple(
                np.asarray(f, dtype=np.intp) for f in model.estimators_features_
            ),
            subsample_features=max_features(model) != int(model.n_features_in_),
            log_samples=np.concatenate(samples),
            expected_path=float(average_path_length([max_samples(model)])[0]),
        )
        probe = np.zeros((1, forest.n_features))
        forest.decision_function(probe)  # compile now, not on a record
        forest.isolation_gains(probe)
        return forest

    @property
    def compiled(self) -> bool:
        """Whether the numba kernel is in use (else the NumPy fallback)."""
        return depths_compiled is not None

    def decision_function(self, X: npt.ArrayLike, *, engine: str | None = None) -> Matrix:
        """scikit-learn's ``decision_function`` for the rows of ``X``.

        ``engine`` forces a path (``"numba"``, ``"walk"``, ``"apply"``); by default the
        fastest available one for the batch size is used.
        """
        chosen = engine or (
            "numba" if self.compiled else ("walk" if np.shape(X)[0] < SMALL_BATCH else "apply")
        )
        if (
            chosen == "numba"
            and isinstance(X, np.ndarray)
            and X.dtype == np.float64
            and X.shape[0] < FEW_ROWS
            and X.flags.c_contiguous
        ):
            rows = X  # the kernel casts each value of a few rows itself (see its comment)
        else:
            with np.errstate(over="ignore"):  # beyond float32 range: ±inf, as in scikit-learn
                rows = np.ascontiguousarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got {rows.shape}")
        if chosen == "numba":
            if depths_compiled is None:
                raise RuntimeError("numba is not installed")
            depths = np.empty(rows.shape[0], dtype=np.float64)
            depths_compiled(
                rows,
                self.feature,
                self.threshold,
                self.child,
                self.value,
                self.roots,
                self.depths,
                depths,
            )
        elif chosen == "walk":
            depths = self._depths_walk(rows)
        elif chosen == "apply":
            depths = self._depths_apply(rows)
        else:
            raise ValueError(f"unknown engine {engine!r}")
        return self._finish(depths)

    def isolation_gains(self, X: npt.ArrayLike) -> Matrix:
        """Per row and feature: how much the feature's splits isolated the row, over all trees.

        A split that sends a row into a branch holding few of the training samples isolates
        it more than one that keeps it with most of them: its gain, ``log(n_parent /
        n_child)``, is credited to the split's feature. Each tree's gains are weighed by how
        much shorter than a tree's expected path length (``c(max_samples)``) the row's path
        was, so a row's gains sum to its total shortfall over the trees that isolated it
        early (to plain gains when none did). The result has shape ``(rows, n_features)``; it
        is the basis of a verdict's attribution.
        """
        with np.errstate(over="ignore"):
            rows = np.ascontiguousarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got {rows.shape}")
        out = np.zeros((rows.shape[0], self.n_features), dtype=np.float64)
        kernel = gains_compiled if gains_compiled is not None else gains_python
        kernel(
            rows,
            self.feature,
            self.threshold,
            self.child,
            self.log_samples,
            self.value,
            self.expected_path,
            self.roots,
            self.depths,
            out,
        )
        return out

    def _finish(self, depths: Matrix) -> Matrix:
        # The same expressions as IsolationForest._compute_score_samples and score_samples.
        # (scikit-learn's np.divide(..., where=denominator != 0) with its denominator, a
        # scalar: the same division, or all ones for a forest of one-sample trees)
        # Written as three operations instead of five: d / -den is -(d / den), and
        # -offset - p is -p - offset, exactly (IEEE rounding is symmetric in sign).
        d = self.denominator
        ratio = depths / -d if d != 0 else np.full_like(depths, -1.0)
        scores: Matrix = -self.offset - 2.0**ratio
        return scores

    def _depths_walk(self, rows: npt.NDArray[np.float32]) -> Matrix:
        """All trees and rows at once, one level per step: cheap for a handful of rows."""
        n = rows.shape[0]
        nodes = np.broadcast_to(self.roots[:, None], (self.roots.shape[0], n)).copy()
        row_index = np.broadcast_to(np.arange(n)[None, :], nodes.shape)
        for _ in range(int(self.depths.max())):
            nodes = self.child[nodes] + (
                rows[row_index, self.feature[nodes]] > self.threshold[nodes]
            )
        contributions = self.value[nodes]
        depths = np.zeros(n, dtype=np.float64)
        for tree_values in contributions:  # tree by tree, as scikit-learn sums them
            depths += tree_values
        return depths

    def _depths_apply(self, rows: npt.NDArray[np.float32]) -> Matrix:
        """Each tree's own Cython ``apply``, without joblib's per-tree dispatch."""
        depths = np.zeros(rows.shape[0], dtype=np.float64)
        for tree, columns, root in zip(
            self.estimators, self.estimator_features, self.roots, strict=True
        ):
            subset = rows[:, columns] if self.subsample_features else rows
            leaves = tree.tree_.apply(np.ascontiguousarray(subset))
            depths += self.value[self.sklearn_to_flat[leaves + root]]
        return depths
