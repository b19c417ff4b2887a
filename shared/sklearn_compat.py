"""Every scikit-learn internal the project relies on, behind one door.

The compiled forest (:mod:`shared.forest`) reproduces ``IsolationForest.decision_function``
bit for bit, which needs a few private attributes of a fitted forest and one private
function. A scikit-learn release may rename them; ``tests/unit/test_compat.py`` covers each
and fails on the first release that breaks it, and the range in ``pyproject.toml`` is pinned
to the minors it passed on. A model whose compiled scores still differ is caught when it
loads (see :func:`shared.forest.CompiledForest.from_sklearn`'s callers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble._iforest import _average_path_length


def average_path_length(n_samples: Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``c(n)``: the average path length of an unsuccessful search in a binary tree of n."""
    result: npt.NDArray[np.float64] = _average_path_length(n_samples)
    return result


def decision_path_lengths(model: Any) -> list[Any]:
    """Per tree: each node's depth (``IsolationForest._decision_path_lengths``)."""
    return list(model._decision_path_lengths)


def average_path_length_per_tree(model: Any) -> list[Any]:
    """Per tree: ``c(n_node_samples)`` of each node (``_average_path_length_per_tree``)."""
    return list(model._average_path_length_per_tree)


def max_samples(model: Any) -> int:
    """The number of samples each tree was fitted on (``IsolationForest._max_samples``)."""
    return int(model._max_samples)


def max_features(model: Any) -> int:
    """The number of features each tree was fitted on (``IsolationForest._max_features``)."""
    return int(model._max_features)
