"""The Helm chart charts/pulp-operator, generated from the same objects as kustomize and OLM.

Each template is the YAML of an object of `objects` built with placeholder settings, in which the
placeholders are then replaced by template expressions; the values, their defaults, descriptions
and values.schema.json come from the `Values` model. The same settings give the same objects as
the kustomize overlays (a test compares `helm template` with `kubectl kustomize`).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pulp_operator.api.crd import KINDS, crd, crd_filename
from pulp_operator.api.crd import to_yaml as crd_yaml

from . import monitoring, objects
from .files import HEADER, Files, json_file, to_yaml
from .settings import (
    DEFAULT_RESOURCES,
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    METRICS_PORT,
    MIN_KUBE_VERSION,
    OPERATOR,
    VERSION,
    Install,
)

CHART = f"charts/{OPERATOR}"
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ImageValues(_Values):
    repository: str = Field(default=IMAGE_REPOSITORY, min_length=1)
    """Repository of the operator image."""
    tag: str = Field(default=IMAGE_TAG, min_length=1)
    """Tag of the operator image."""
    pullPolicy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    """imagePullPolicy of the operator container."""


class WatchValues(_Values):
    allNamespaces: bool = False
    """Watch every namespace (a ClusterRole and ClusterRoleBinding) instead of `namespaces`."""
    namespaces: list[str] = Field(
        default_factory=list, json_schema_extra={"items": {"type": "string", "pattern": _NAME}}
    )
    """Namespaces to watch, each getting a Role and RoleBinding; empty: the release namespace."""


class ServiceMonitorValues(_Values):
    enabled: bool = False
    """Create a ServiceMonitor (needs the Prometheus operator's CRDs)."""


class PrometheusRuleValues(_Values):
    enabled: bool = False
    """Create a PrometheusRule with the alerts (needs the Prometheus operator's CRDs)."""


class DashboardValues(_Values):
    enabled: bool = False
    """Create a ConfigMap with the Grafana dashboard, labelled grafana_dashboard=1 for Grafana's
    dashboard sidecar."""


class MetricsValues(_Values):
    enabled: bool = True
    """Create the metrics Service (pulp-operator-metrics)."""
    port: int = Field(default=METRICS_PORT, ge=1, le=65535)
    """Port of the Prometheus metrics endpoint."""
    serviceMonitor: ServiceMonitorValues = Field(default_factory=ServiceMonitorValues)
    prometheusRule: PrometheusRuleValues = Field(default_factory=PrometheusRuleValues)
    dashboard: DashboardValues = Field(default_factory=DashboardValues)


class Values(_Values):
    """Values of the pulp-operator chart."""

    image: ImageValues = Field(default_factory=ImageValues)
    watch: WatchValues = Field(default_factory=WatchValues)
    resources: dict[str, Any] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES),
        json_schema_extra={
            "additionalProperties": False,
            "properties": {
                "requests": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number"]},
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number"]},
                },
            },
        },
    )
    """core/v1 ResourceRequirements of the operator container."""
    metrics: MetricsValues = Field(default_factory=MetricsValues)
    logLevel: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the operator."""


def values_for(install: Install) -> dict[str, Any]:
    """The chart values that give the objects of `install` (release namespace: its namespace)."""
    if "@" in install.image:
        repository, tag = install.image.split("@", 1)
    else:
        repository, _, tag = install.image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": install.image_pull_policy},
        "watch": {
            "allNamespaces": install.mode == "cluster-wide",
            "namespaces": list(install.watch_namespaces),
        },
        # Helm merges maps with the defaults: null removes a default key the install lacks.
        "resources": {**dict.fromkeys(DEFAULT_RESOURCES), **install.resources},
        "metrics": {"enabled": install.metrics, "port": install.metrics_port},
        "logLevel": install.log_level,
    }


def values_schema() -> dict[str, Any]:
    schema = Values.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)
    return {"$schema": "http://json-schema.org/draft-07/schema#", **inlined}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: _inline(v, defs) for k, v in node.items() if k != "title"}


def values_yaml() -> str:
    """values.yaml: the defaults, each key preceded by its description."""
    lines = [
        HEADER.rstrip(),
        "# Values of the pulp-operator chart (values.schema.json checks them).",
    ]
    _describe(Values, Values().model_dump(mode="json"), 0, lines)
    return "\n".join(lines) + "\n"


def _describe(
    model: type[BaseModel], values: dict[str, Any], indent: int, lines: list[str]
) -> None:
    pad = " " * indent
    for name, field in model.model_fields.items():
        value = values[name]
        if field.description:
            lines.extend(f"{pad}# {line}".rstrip() for line in field.description.splitlines())
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{name}:")
            _describe(annotation, value, indent + 2, lines)
        elif isinstance(value, dict | list) and value:
            lines.append(f"{pad}{name}:")
            lines.extend(f"{pad}  {line}" for line in to_yaml(value).splitlines())
        else:
            lines.append(f"{pad}{name}: {json.dumps(value)}")


# --- templates ---------------------------------------------------------------------------------

_SCALARS = {
    "NS": "{{ $.Release.Namespace }}",
    "WATCHED_NS": "{{ $ns }}",
    "IMAGE": '{{ include "pulp-operator.image" $ }}',
    "PULL": "{{ $.Values.image.pullPolicy }}",
    "WATCH": '{{ include "pulp-operator.watchNamespace" $ | quote }}',
    "PORT": "{{ $.Values.metrics.port }}",
    "LOG": "{{ $.Values.logLevel }}",
}
_BLOCKS = {"RESOURCES": "$.Values.resources"}
_PLACEHOLDER = re.compile(r"'?@@([A-Z_]+)@@'?")
_BLOCK_LINE = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z]+): '@@(?P<name>" + "|".join(_BLOCKS) + ")@@'$", re.M
)


def _placeholder(name: str) -> str:
    return f"@@{name}@@"


def _template_install() -> Install:
    return Install(
        namespace=_placeholder("NS"),
        image=_placeholder("IMAGE"),
        image_pull_policy=_placeholder("PULL"),
        log_level=_placeholder("LOG"),
    )


def _escape(text: str) -> str:
    """Literal {{ }} of the objects (alert templates) as Helm string literals."""
    return (
        text.replace("{{", "\0open\0")
        .replace("}}", "\0close\0")
        .replace("\0open\0", '{{ "{{" }}')
        .replace("\0close\0", '{{ "}}" }}')
    )


def _render(obj: Any) -> str:
    """YAML of an object with placeholders turned into template expressions."""
    text = _escape(to_yaml(obj))

    def block(match: re.Match[str]) -> str:
        indent = len(match["indent"])
        value = _BLOCKS[match["name"]]
        directive = f"{{{{- toYaml {value} | nindent {indent + 2} }}}}"
        return f"{match['indent']}{match['key']}:\n{' ' * (indent + 2)}{directive}"

    text = _BLOCK_LINE.sub(block, text)
    return _PLACEHOLDER.sub(lambda m: _SCALARS[m[1]], text)


def _with_port(obj: Any) -> Any:
    """Replace the metrics port numbers of an object by the port placeholder."""
    if isinstance(obj, dict):
        return {
            k: _placeholder("PORT")
            if k in ("containerPort", "port") and v == METRICS_PORT
            else _with_port(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_with_port(v) for v in obj]
    return obj


def _deployment() -> str:
    install = _template_install()
    dep = objects.deployment(install)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": objects.WATCH_NAMESPACE, "value": _placeholder("WATCH")}]
    container["resources"] = _placeholder("RESOURCES")
    container["args"] = [
        a.replace(str(METRICS_PORT), _placeholder("PORT")) for a in container["args"]
    ]
    return _render(_with_port(dep))


def _document(body: str, condition: str | None = None) -> str:
    if condition:
        body = f"{{{{- if {condition} }}}}\n{body}{{{{- end }}}}\n"
    return HEADER + body


def _rbac() -> str:
    install = _template_install()
    cluster = objects.watch_rbac(Install(namespace=install.namespace, mode="cluster-wide"))
    namespaced_install = Install(
        namespace=install.namespace, watch_namespaces=(_placeholder("WATCHED_NS"),)
    )
    namespaced = objects.watch_rbac(namespaced_install)
    parts = [
        "{{- if .Values.watch.allNamespaces }}",
        *("---\n" + _render(obj).rstrip() for obj in cluster),
        "{{- else }}",
        "{{- range $ns := .Values.watch.namespaces | default (list .Release.Namespace) }}",
        *("---\n" + _render(obj).rstrip() for obj in namespaced),
        "{{- end }}",
        "{{- end }}",
    ]
    return "\n".join(parts) + "\n"


_HELPERS = """{{/* The operator image: repository:tag, or repository@digest for a sha256: tag. */}}
{{- define "pulp-operator.image" -}}
{{- if hasPrefix "sha256:" .Values.image.tag -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{/* WATCH_NAMESPACE: the watched namespaces, comma-separated; empty for all namespaces. */}}
{{- define "pulp-operator.watchNamespace" -}}
{{- if not .Values.watch.allNamespaces -}}
{{- .Values.watch.namespaces | default (list .Release.Namespace) | join "," -}}
{{- end -}}
{{- end -}}
"""

_NOTES = """pulp-operator {{ .Chart.AppVersion }} is installed in {{ .Release.Namespace }}.
{{- if .Values.watch.allNamespaces }}
It watches every namespace.
{{- else }}
It watches: {{ include "pulp-operator.watchNamespace" . }}
{{- end }}

Create a Pulp in a watched namespace (examples: config/samples/ of the project), then:

  kubectl get pulp -A
  pulp-operator status NAME -n NAMESPACE    # components, version, URL, failing conditions
"""


def chart_yaml() -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": OPERATOR,
        "description": "A Kubernetes operator for Pulp 3 (repo-manager.pulpproject.org/v1: Pulp,"
        " PulpBackup, PulpRestore)",
        "type": "application",
        "version": VERSION,
        "appVersion": VERSION,
        "kubeVersion": f">={MIN_KUBE_VERSION}-0",
        "home": "https://pulpproject.org",
        "keywords": ["pulp", "repository", "artifact", "operator"],
    }


def chart_files() -> Files:
    template = _template_install()
    files: Files = {
        f"{CHART}/Chart.yaml": HEADER + to_yaml(chart_yaml()),
        f"{CHART}/values.yaml": values_yaml(),
        f"{CHART}/values.schema.json": json_file(values_schema()),
        f"{CHART}/.helmignore": "# Generated by `make generate`: do not edit.\n*.orig\n*~\n",
        f"{CHART}/templates/_helpers.tpl": _HELPERS,
        f"{CHART}/templates/NOTES.txt": _NOTES,
        f"{CHART}/templates/serviceaccount.yaml": _document(
            _render(objects.service_account(template))
        ),
        f"{CHART}/templates/leader-election-rbac.yaml": _document(
            "".join("---\n" + _render(o) for o in objects.leader_election_rbac(template))
        ),
        f"{CHART}/templates/rbac.yaml": _document(_rbac()),
        f"{CHART}/templates/deployment.yaml": _document(_deployment()),
        f"{CHART}/templates/metrics-service.yaml": _document(
            _render(_with_port(objects.metrics_service(template))), ".Values.metrics.enabled"
        ),
        f"{CHART}/templates/servicemonitor.yaml": _document(
            _render(monitoring.service_monitor(template)), ".Values.metrics.serviceMonitor.enabled"
        ),
        f"{CHART}/templates/prometheusrule.yaml": _document(
            _render(monitoring.prometheus_rule(template)), ".Values.metrics.prometheusRule.enabled"
        ),
        f"{CHART}/templates/dashboard-configmap.yaml": _document(
            _render(dashboard_configmap(template)), ".Values.metrics.dashboard.enabled"
        ),
    }
    for kind in KINDS:
        files[f"{CHART}/crds/{crd_filename(kind)}"] = crd_yaml(crd(kind))
    return files


def dashboard_configmap(install: Install) -> dict[str, Any]:
    meta = objects.meta(f"{OPERATOR}-dashboard", install.namespace)
    meta["labels"] = {"grafana_dashboard": "1", **meta["labels"]}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"pulp-operator.json": monitoring.dashboard_json()},
    }
