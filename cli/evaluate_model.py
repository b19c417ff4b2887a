"""The model `evaluate` judges: trained through the api, an existing version, or, with
``--offline``, loaded from the model directory or trained here, and then scored here.

Offline scoring is what the worker publishes: a context model's
``score_records(vehicle_ids, epoch_seconds(timestamps), X)`` for the records in replay order,
a point model's ``decision_function(X)``; a record is flagged when its score is below 0.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cli import ui
from cli.config import Context
from cli.errors import CliError
from cli.evaluate_input import Item

HISTORY_RECORDS = 10_000  # the simulated history an offline evaluation trains on


@dataclass(frozen=True, slots=True)
class Model:
    """A model to score with offline, and where it came from."""

    estimator: Any  # ContextForest or IsolationForest
    version: str  # a registry version, or "local" for one trained here
    source: str


def training_params(args: argparse.Namespace) -> dict[str, Any]:
    """The training parameters given on the command line (the api's defaults for the rest)."""
    params: dict[str, Any] = {}
    for name in ("detector", "false_alarm_rate", "random_state"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def train_through_api(
    args: argparse.Namespace,
    context: Context,
    items: list[Item],
    feature_names: list[str] | None,
) -> str:
    """POST /ingest the training part (activated, so the worker scores with it); its version."""
    from cli.apiclient import ApiClient

    body: dict[str, Any] = {"records": [i.record for i in items]}
    params = training_params(args)
    if params:
        body["params"] = params
    if feature_names:
        body["feature_names"] = feature_names
    with ui.spinner(f"training a model on {len(items):,} records", enabled=not args.quiet):
        answer = ApiClient(context).request(
            "POST", "/ingest", body, query={"activate": "true"}, timeout=args.timeout
        )
    if not isinstance(answer, dict) or "model_version" not in answer:
        raise CliError(
            f"the api answered POST /ingest with something unexpected: {str(answer)[:120]}"
        )
    return str(answer["model_version"])


def check_active(context: Context, version: str) -> None:
    """The worker scores with the active version: ``--model`` must name it (online)."""
    from cli.apiclient import ApiClient

    answer = ApiClient(context).request("GET", "/models")
    active = (answer or {}).get("active") if isinstance(answer, dict) else None
    if active != version:
        raise CliError(
            f"--model {version} is not the active version ({active or 'none'}): the worker "
            f"scores with the active one; activate it (vehicle-anomaly models activate "
            f"{version}) or score offline (--offline)"
        )


def model_dir(args: argparse.Namespace, context: Context) -> Path:
    return Path(args.model_dir) if args.model_dir else Path(context.settings.model_dir)


def load_version(args: argparse.Namespace, context: Context, version: str | None) -> Model:
    """A version of the model directory (the active one for ``None``), its sha256 verified."""
    from shared.errors import RegistryError
    from shared.registry import ModelRegistry

    root = model_dir(args, context)
    registry = ModelRegistry(root, signing_key=context.settings.signing_key)
    try:
        loaded = registry.load(version)
    except RegistryError as error:
        raise CliError(f"model directory {root}: {error}") from None
    return Model(loaded.estimator, loaded.meta.version, f"version {loaded.meta.version} of {root}")


def train_locally(
    args: argparse.Namespace, context: Context, items: list[Item], what: str
) -> Model:
    """A model trained here, with the api's defaults and the command line's parameters."""
    from shared.context import ContextForest, epoch_seconds
    from shared.errors import TrainingError
    from shared.fitting import ForestParams, train

    ids, times, X = columns_of(items)
    params = training_params(args)
    random_state = params.get("random_state", context.settings.iforest_random_state)
    with ui.spinner(f"training a model on {len(items):,} records", enabled=not args.quiet):
        try:
            if params.get("detector", "context") == "point":
                forest = ForestParams.resolve(None, context.settings)
                chosen = ForestParams(**{**forest.as_dict(), "random_state": random_state})
                estimator: Any = train(X, chosen)
            else:
                options: dict[str, Any] = {"random_state": random_state}
                if "false_alarm_rate" in params:
                    options["false_alarm_rate"] = params["false_alarm_rate"]
                estimator = ContextForest(**options).fit(ids, epoch_seconds(times), X)
        except TrainingError as error:
            raise CliError(f"cannot train on {what}: {error}") from None
    return Model(estimator, "local", f"trained here on {what}")


def simulated_history(args: argparse.Namespace) -> list[Item]:
    """The clean history `train --simulated` would send for this fleet, ending at --start."""
    from simulator import training_history

    end = args.start or datetime.now(UTC)
    history = training_history(
        args.vehicles, HISTORY_RECORDS, seed=args.seed, end=end, interval_seconds=args.interval
    )
    return [Item(r.to_record(), 0, None) for r in history]


def columns_of(items: list[Item]) -> tuple[list[str], list[str], npt.NDArray[np.float64]]:
    """Vehicle ids, timestamps and the feature matrix of records."""
    ids = [str(i.record["vehicle_id"]) for i in items]
    times = [str(i.record["timestamp"]) for i in items]
    X = np.array([i.record["feature_vector"] for i in items], dtype=np.float64)
    return ids, times, X


def score(model: Model, items: list[Item]) -> npt.NDArray[np.float64]:
    """Each record's ``anomaly_score`` in replay order, as the worker would publish it."""
    from shared.context import ContextForest, epoch_seconds

    ids, times, X = columns_of(items)
    width = int(getattr(model.estimator, "n_features_in_", None) or X.shape[1])
    if X.shape[1] != width:
        raise CliError(
            f"the records have {X.shape[1]} features; the model ({model.source}) expects {width}"
        )
    if isinstance(model.estimator, ContextForest):
        scores: npt.NDArray[np.float64] = model.estimator.score_records(
            ids, epoch_seconds(times), X
        )
    else:
        scores = model.estimator.decision_function(X)
    return scores


def offline_model(args: argparse.Namespace, context: Context, train_items: list[Item]) -> Model:
    """The model of an offline evaluation: --model, else trained here, else the active one."""
    if args.model:
        return load_version(args, context, args.model)
    if train_items:
        return train_locally(
            args, context, train_items, f"the file's first {len(train_items):,} normal records"
        )
    if not args.file:
        history = simulated_history(args)
        return train_locally(
            args, context, history, f"{len(history):,} clean records of the fleet's history"
        )
    return load_version(args, context, None)
