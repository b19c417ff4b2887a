"""``vehicle-anomaly train``: train a model version through the api's ``POST /ingest``."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli import ui
from cli.apiclient import ApiClient
from cli.config import Context
from cli.errors import CliError
from cli.simulate import SIMULATED_TRAINING_PARAMS, chosen_params, train_on_history


def run(args: argparse.Namespace, context: Context) -> int:
    activate = not args.no_activate
    began = time.monotonic()
    if args.simulated is not None:
        answer = train_on_history(
            context,
            vehicles=args.vehicles,
            count=args.simulated,
            seed=args.seed,
            end=args.end or datetime.now(UTC),
            params=chosen_params(args, SIMULATED_TRAINING_PARAMS),
            activate=activate,
            quiet=args.quiet,
            timeout=args.timeout,
        )
        source = (
            f"{args.simulated:,} simulated records ({args.vehicles} vehicles, seed {args.seed})"
        )
    else:
        from cli.readers import read_records

        path = Path(args.file)
        with ui.spinner(f"reading {path}", enabled=not args.quiet):
            records = read_records(path, args.format, args.features)
        body: dict[str, Any] = {"records": [r.record for r in records]}
        params = chosen_params(args)
        if params:
            body["params"] = params
        if args.features:
            body["feature_names"] = list(args.features)  # explained verdicts name them
        with ui.spinner(f"training a model on {len(records):,} records", enabled=not args.quiet):
            answer = ApiClient(context).request(
                "POST",
                "/ingest",
                body,
                query={"activate": "true" if activate else "false"},
                timeout=args.timeout,
            )
        if not isinstance(answer, dict) or "model_version" not in answer:
            raise CliError(
                f"the api answered POST /ingest with something unexpected: {str(answer)[:120]}"
            )
        source = f"{len(records):,} records of {path}"
    seconds = time.monotonic() - began
    if args.json:
        print(json.dumps(answer, sort_keys=True))
        return 0
    state = (
        "active"
        if answer.get("active")
        else "not active: the shadow candidate (`vehicle-anomaly shadow` compares it with the "
        "active model)"
    )
    print(answer["model_version"])
    print(
        f"trained on {source}: {answer.get('n_features', '?')} features, "
        f"{answer.get('params', {}).get('n_estimators', '?')} trees, {state}, in {seconds:.1f} s",
    )
    for warning in answer.get("warnings") or []:
        print(f"warning: {warning}")
    return 0
