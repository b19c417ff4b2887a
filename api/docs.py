"""``/docs``: Swagger UI served from this process, not from a CDN.

The assets come from the ``swagger-ui-bundle`` package, mounted under ``/docs/assets``; the
page does not persist the key a user authorizes with (no ``localStorage``), so closing the tab
forgets it. ``/metrics`` answers its exact path only: an encoded variant such as
``/%6detrics`` (which a load balancer's path rule does not see as ``/metrics``) is a 404.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # a Path to the vendored Swagger UI files

ASSETS = "/docs/assets"


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve Swagger UI at ``/docs`` with local assets (``app`` was built with no docs_url)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": False},
        )

    app.add_route("/docs", docs, include_in_schema=False)
