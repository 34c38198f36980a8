"""`GET /metrics`: the gateway's Prometheus metrics (gateway.metrics), on its HTTP port; and the
count of every HTTP request the app answers, by its operation's path template."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, request

from gateway.api.operations import Operation, Operations
from gateway.metrics import GatewayMetrics


def metrics_blueprint(ops: Operations, metrics: GatewayMetrics) -> Blueprint:
    """The metrics route; registering it also counts every answer of the app in `metrics`."""
    blueprint = Blueprint("metrics", __name__)

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/metrics",
            "Prometheus metrics of this gateway (text exposition format 0.0.4)",
            "monitoring",
            str,
            media=CONTENT_TYPE_LATEST,
            description="docs/architecture.md, Metrics, lists the names. Rate-limited like every "
            "route; with API keys required, a scraper sends one.",
        ),
    )
    async def get_metrics() -> Response:
        return Response(metrics.node.render(), content_type=CONTENT_TYPE_LATEST)

    @blueprint.after_app_request
    async def count(response: Response) -> Response:
        operation = ops.by_endpoint.get(request.endpoint or "")
        if operation is not None:
            route = operation.path
        elif request.url_rule is not None:  # the app's own routes: /docs, /openapi.json
            route = request.url_rule.rule
        else:
            route = "unmatched"  # 404s and 405s: never the path asked for
        metrics.http_request(route, request.method, response.status_code)
        return response

    return blueprint
