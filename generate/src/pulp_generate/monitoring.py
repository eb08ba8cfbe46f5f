"""The monitoring kit: a ServiceMonitor, a PrometheusRule with the alerts, a Grafana dashboard.

The expressions read the metrics of src/pulp_operator/metrics.py (and, for crash-looping pods,
kube-state-metrics); tests parse them with Prometheus' own PromQL parser and check that every
pulp_operator_* name they read is one the running operator exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .files import json_file
from .objects import METRICS_SERVICE, meta
from .settings import OPERATOR, SELECTOR, Install

Obj = dict[str, Any]

SCRAPE_INTERVAL = "30s"
KUBE_STATE_METRICS = ("kube_pod_container_status_waiting_reason", "kube_pod_labels")
"""Metrics of kube-state-metrics the crash-loop alert reads (it must export the pods'
app.kubernetes.io/part-of label: --metric-labels-allowlist=pods=[app.kubernetes.io/part-of])."""


def service_monitor(install: Install) -> Obj:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(OPERATOR, install.namespace),
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "namespaceSelector": {"matchNames": [install.namespace]},
            "endpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "interval": SCRAPE_INTERVAL,
                    # The per-Pulp series carry the Pulp's namespace: keep it rather than
                    # renaming it exported_namespace in favour of the operator pod's namespace.
                    "honorLabels": True,
                }
            ],
        },
    }


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


PULP = "{{ $labels.namespace }}/{{ $labels.pulp }}"

ALERTS = (
    Alert(
        "PulpNotReady",
        'max by (namespace, pulp) (pulp_operator_pulp_condition{condition="Ready",status="True"})'
        " == 0",
        "10m",
        "warning",
        f"Pulp {PULP} has not been Ready for 10 minutes",
        f"The Ready condition of Pulp {PULP} is not True. `pulp-operator status {{{{ $labels.pulp"
        " }}}} -n {{ $labels.namespace }}` names the failing component; docs/troubleshooting.md"
        " explains each reason.",
    ),
    Alert(
        "PulpMigrationFailed",
        "max by (namespace, pulp) (pulp_operator_pulp_condition_reason"
        '{condition="MigrationsComplete",reason="MigrationFailed"}) == 1',
        "1m",
        "critical",
        f"The database migration of Pulp {PULP} failed",
        "The migration Job failed: the previous version keeps serving and the new one is not"
        " rolled out. Read the Job's log (the MigrationsComplete condition names it).",
    ),
    Alert(
        "PulpOperatorReconcileErrors",
        'sum by (namespace, pod) (rate(pulp_operator_reconciles_total{result="error"}[10m])) > 0',
        "15m",
        "warning",
        "pulp-operator reconcile passes are failing",
        "Reconcile passes of {{ $labels.pod }} have been failing for 15 minutes; they are"
        " retried with backoff. The operator's log has the traceback.",
    ),
    Alert(
        "PulpOperatorAPIErrors",
        "sum by (namespace, pod, resource, code) (rate(pulp_operator_api_errors_total"
        '{code!~"404|409"}[10m])) > 0',
        "15m",
        "warning",
        "pulp-operator gets errors from the Kubernetes API",
        "Requests on {{ $labels.resource }} fail with HTTP {{ $labels.code }} (403: the RBAC"
        " of the install misses a rule; 422: the API server rejects an object built from a"
        " Pulp spec, see the ApplyFailed condition).",
    ),
    Alert(
        "PulpOperatorQueueItemOld",
        "max by (namespace, pod) (pulp_operator_queue_oldest_seconds) > 300",
        "5m",
        "warning",
        "A Pulp has waited more than 5 minutes to be reconciled",
        "The work queue of {{ $labels.pod }} is not keeping up or is stuck (its liveness probe"
        " fails at 10 minutes).",
    ),
    Alert(
        "PulpOperatorDown",
        f'up{{job="{METRICS_SERVICE}"}} == 0',
        "10m",
        "warning",
        "pulp-operator's metrics endpoint has been down for 10 minutes",
        "Nothing reconciles the Pulps while the operator is down (they keep running).",
    ),
    Alert(
        "PulpComponentCrashLooping",
        "max by (namespace, pod, container) ("
        'kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}'
        " * on (namespace, pod) group_left ()"
        ' kube_pod_labels{label_app_kubernetes_io_part_of="pulp"}) == 1',
        "10m",
        "warning",
        "Container {{ $labels.container }} of Pulp pod {{ $labels.namespace }}/{{ $labels.pod }}"
        " is crash-looping",
        "From kube-state-metrics (with --metric-labels-allowlist=pods=[app.kubernetes.io/part-of]):"
        " `kubectl logs --previous` shows why it exits.",
    ),
)


def prometheus_rule(install: Install) -> Obj:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta(OPERATOR, install.namespace),
        "spec": {
            "groups": [
                {
                    "name": "pulp-operator",
                    "rules": [
                        {
                            "alert": a.name,
                            "expr": a.expr,
                            "for": a.duration,
                            "labels": {"severity": a.severity},
                            "annotations": {"summary": a.summary, "description": a.description},
                        }
                        for a in ALERTS
                    ],
                }
            ]
        },
    }


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries, stat, table
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    description: str = ""


_PULP_NS = 'namespace=~"$namespace"'

PANELS = (
    Panel(
        "Pulps not Ready",
        "stat",
        (
            (
                f'count(pulp_operator_pulp_condition{{condition="Ready",status="True",{_PULP_NS}}}'
                " == 0) or vector(0)",
                "not Ready",
            ),
        ),
        description="Pulps whose Ready condition is not True.",
    ),
    Panel(
        "Ready per Pulp",
        "timeseries",
        (
            (
                f'pulp_operator_pulp_condition{{condition="Ready",status="True",{_PULP_NS}}}',
                "{{namespace}}/{{pulp}}",
            ),
        ),
        description="1 while the Pulp is Ready.",
    ),
    Panel(
        "Failing conditions",
        "table",
        (
            (
                "pulp_operator_pulp_condition_reason and on (namespace, pulp, condition)"
                f' (pulp_operator_pulp_condition{{status="False",{_PULP_NS}}} == 1)',
                "{{namespace}}/{{pulp}} {{condition}}: {{reason}}",
            ),
        ),
        description="Conditions that are False, with their reason (see docs/troubleshooting.md).",
    ),
    Panel(
        "Reconciles by result",
        "timeseries",
        (
            (
                "sum by (result) (rate(pulp_operator_reconciles_total[$__rate_interval]))",
                "{{result}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Reconcile duration",
        "timeseries",
        tuple(
            (
                f"histogram_quantile({q}, sum by (le) "
                "(rate(pulp_operator_reconcile_duration_seconds_bucket[$__rate_interval])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ),
        unit="s",
    ),
    Panel(
        "Objects applied by kind",
        "timeseries",
        (
            (
                "sum by (kind) (rate(pulp_operator_applied_objects_total[$__rate_interval]))",
                "{{kind}}",
            ),
            (
                "sum by (kind) (rate(pulp_operator_deleted_objects_total[$__rate_interval]))",
                "deleted {{kind}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "API errors",
        "timeseries",
        (
            (
                "sum by (method, resource, code) "
                "(rate(pulp_operator_api_errors_total[$__rate_interval]))",
                "{{code}} {{method}} {{resource}}",
            ),
        ),
        unit="ops",
        description="404 and 409 happen in normal operation (an absent object, a create that"
        " found one); others need a look.",
    ),
    Panel(
        "Work queue",
        "timeseries",
        (
            ("max(pulp_operator_queue_depth)", "depth"),
            ("max(pulp_operator_queue_oldest_seconds)", "oldest waiting (s)"),
        ),
    ),
    Panel(
        "Queue wait",
        "timeseries",
        (
            (
                "histogram_quantile(0.95, sum by (le) "
                "(rate(pulp_operator_queue_wait_seconds_bucket[$__rate_interval])))",
                "p95",
            ),
        ),
        unit="s",
    ),
)


def dashboard() -> Obj:
    panels = []
    for index, panel in enumerate(PANELS):
        width = 8 if panel.kind == "stat" else 12
        panels.append(
            {
                "id": index + 1,
                "title": panel.title,
                "type": panel.kind,
                "description": panel.description,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": width, "x": (index % 2) * 12, "y": (index // 2) * 8},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "expr": expr,
                        "legendFormat": legend,
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    }
                    for i, (expr, legend) in enumerate(panel.targets)
                ],
            }
        )
    return {
        "title": "Pulp operator",
        "uid": "pulp-operator",
        "tags": ["pulp", "pulp-operator"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                },
                {
                    "name": "namespace",
                    "type": "query",
                    "label": "Pulp namespace",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(pulp_operator_pulp_condition, namespace)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


def dashboard_json() -> str:
    return json_file(dashboard())
