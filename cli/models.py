"""``vehicle-anomaly models list|activate|delete|shadow|unshadow``: the registry through the api."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from cli import ui
from cli.apiclient import ApiClient
from cli.config import Context
from cli.errors import UsageError

_VERSION_CHARS = set("0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.")


def version_path(version: str) -> str:
    """``/models/VERSION``, after checking the name (a usage error otherwise)."""
    if (
        not version
        or len(version) > 64
        or not set(version) <= _VERSION_CHARS
        or version in (".", "..")
    ):
        raise UsageError(f"{version!r} is not a model version name (e.g. 20240115100000)")
    return "/models/" + urllib.parse.quote(version, safe="")


def _params(params: dict[str, Any]) -> str:
    keys = ("n_estimators", "max_samples", "contamination", "max_features", "random_state")
    return " ".join(f"{k}={params[k]}" for k in keys if k in params and params[k] is not None)


def _role(model: dict[str, Any], answer: dict[str, Any]) -> str:
    """``active``, ``candidate`` (scored in shadow) or nothing."""
    if model.get("active"):
        return "active"
    if model.get("candidate") or (
        answer.get("candidate") is not None and answer.get("candidate") == model.get("version")
    ):
        return "candidate"
    return ""


def run(args: argparse.Namespace, context: Context) -> int:
    client = ApiClient(context)
    if args.action == "list":
        answer = client.request("GET", "/models")
        if args.json:
            print(json.dumps(answer, sort_keys=True))
            return 0
        models = (answer or {}).get("models") or []
        if not models:
            print("no model versions yet: train one (vehicle-anomaly train --simulated 10000)")
            return 0
        rows = [
            [
                "*" if m.get("active") else "",
                m.get("version", "?"),
                _role(m, answer),
                str(m.get("created_at", "?")).replace("+00:00", "Z"),
                m.get("n_features", "?"),
                f"{m.get('record_count', 0):,}",
                _params(m.get("params") or {}),
            ]
            for m in models
        ]
        print(
            ui.table(
                ["", "VERSION", "ROLE", "CREATED", "FEATURES", "RECORDS", "PARAMS"],
                rows,
                right=(4, 5),
            )
        )
        return 0
    path = version_path(args.version)
    if args.action == "activate":
        answer = client.request("POST", path + "/activate")
        print(f"model {answer.get('version', args.version)} is now active")
        return 0
    if args.action == "shadow":
        client.request("POST", path + "/shadow")
        print(
            f"model {args.version} is now the shadow candidate: the workers score it beside the "
            "active model from their next registry poll (see `vehicle-anomaly shadow`)"
        )
        return 0
    if args.action == "unshadow":
        client.request("DELETE", path + "/shadow")
        print(f"model {args.version} is no longer scored in shadow")
        return 0
    client.request("DELETE", path)
    print(f"model {args.version} deleted")
    return 0
