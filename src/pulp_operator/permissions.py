"""What the operator calls on the Kubernetes API: the one source of its RBAC rules.

Every request the operator makes is listed here once, as an `Access` (API group, resource, verbs,
why). The install manifests (kustomize, the Helm chart, the OLM bundle) are generated from these
lists by `make generate`, and the API-server tests run the operator with exactly these rights, so
a missing line shows up as a 403 there. A feature that calls the API for something new adds one
line here.

Scopes:

* ``watched``: in every namespace the operator watches (a Role and RoleBinding per namespace, or
  one ClusterRole bound cluster-wide when it watches all namespaces);
* ``own``: only in the namespace the operator runs in (its leader-election Lease).

Nothing is needed at cluster scope: kopf's scanning of namespaces and CRDs is turned off for exact
namespace names (`scanning_needed`) and API discovery is open to every authenticated client.
Verbs follow the calls: watches are list+watch; server-side apply is patch, and create too (the
API server authorises an apply that creates the object as a create); `Kube.create` is create,
pruning is delete, `Kube.get` is get, status writes are patch on the status subresource.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .api.crd import GROUP

Scope = Literal["watched", "own"]

WATCH = ("list", "watch")
OWNED = ("get", *WATCH, "create", "patch", "delete")
"""The verbs on a kind the operator owns: applied, watched, pruned, read by name when taken over."""


@dataclass(frozen=True)
class Access:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    scope: Scope = "watched"


ACCESS: tuple[Access, ...] = (
    # The operator's own kinds
    Access(GROUP, "pulps", ("get", *WATCH), "reconcile Pulps: a watch, and one read per pass"),
    Access(GROUP, "pulps/status", ("patch",), "write a Pulp's conditions and status fields"),
    Access(
        GROUP,
        "pulps",
        ("create", "patch"),
        "a PulpRestore creates the Pulp it restores, stops it and gives it its spec back",
    ),
    Access(GROUP, "pulpbackups", ("get", *WATCH), "run PulpBackups: a watch, one read per pass"),
    Access(GROUP, "pulpbackups/status", ("patch",), "a PulpBackup's runs, steps and conditions"),
    Access(GROUP, "pulprestores", ("get", *WATCH), "run PulpRestores: a watch, one read per pass"),
    Access(GROUP, "pulprestores/status", ("patch",), "a PulpRestore's steps and conditions"),
    Access(
        "",
        "pods",
        WATCH,
        "pods of backup/restore Jobs (step progress, termination messages); the node a"
        " ReadWriteOnce file storage claim is attached to; a restored Pulp's pods gone",
    ),
    Access(
        "",
        "events",
        ("create", "list"),
        "Events on a Pulp (created, updated, failures); the latest Event of a pending claim",
    ),
    # Objects the operator owns (applied with server-side apply, watched by label, pruned; read by
    # name when the watch cache has none labelled as ours: the upstream operator's, taken over)
    Access(
        "apps",
        "deployments",
        OWNED,
        "api, content, worker, web, redis",
    ),
    Access(
        "apps",
        "statefulsets",
        OWNED,
        "the managed PostgreSQL",
    ),
    Access("", "services", OWNED, "Services of the components"),
    Access(
        "",
        "serviceaccounts",
        OWNED,
        "the Pulp pods' ServiceAccount",
    ),
    Access(
        "batch",
        "jobs",
        OWNED,
        "migration and admin password Jobs; backup and restore Jobs (read, created, deleted)",
    ),
    Access(
        "networking.k8s.io",
        "ingresses",
        OWNED,
        "ingress_type ingress",
    ),
    Access(
        "autoscaling",
        "horizontalpodautoscalers",
        OWNED,
        "spec.*.hpa",
    ),
    Access("policy", "poddisruptionbudgets", OWNED, "spec.*.pdb"),
    Access(
        "rbac.authorization.k8s.io",
        "roles",
        OWNED,
        "the Pulp pods' Role (it grants nothing); a restore's Role allowing to create Secrets"
        " (the operator holds that right, so no escalate or bind is needed)",
    ),
    Access(
        "rbac.authorization.k8s.io",
        "rolebindings",
        OWNED,
        "its binding",
    ),
    # Owned and referenced: generated secrets are created once (never overwritten), user Secrets
    # and ConfigMaps are read when a Pulp names them.
    Access(
        "",
        "secrets",
        OWNED,
        "generated credentials and keys (created once), settings; referenced Secrets (read)",
    ),
    Access(
        "",
        "configmaps",
        OWNED,
        "the nginx config; referenced ConfigMaps such as custom_pulp_settings (read)",
    ),
    Access(
        "",
        "persistentvolumeclaims",
        ("get", *WATCH, "create", "patch"),
        "file storage and Redis claims (never deleted: they hold data); referenced claims (read)",
    ),
    # OpenShift
    Access(
        "route.openshift.io",
        "routes",
        ("get", "list", "create", "patch"),
        "ingress_type route; a list at start-up tells whether the Route API exists",
    ),
    Access(
        "route.openshift.io",
        "routes/custom-host",
        ("create", "update"),
        "OpenShift checks these when a Route sets spec.host (route_host)",
    ),
    # Leader election (one active replica), in the operator's namespace only
    Access(
        "coordination.k8s.io",
        "leases",
        ("get", "create", "update"),
        "leader election",
        scope="own",
    ),
)

_VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete")


def rules(scope: Scope, access: Iterable[Access] = ACCESS) -> list[dict[str, Any]]:
    """RBAC PolicyRules for a scope: one rule per (group, verbs), resources sorted."""
    merged: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for item in access:
        if item.scope != scope:
            continue
        verbs = tuple(sorted(set(item.verbs), key=_VERB_ORDER.index))
        merged.setdefault((item.group, verbs), set()).add(item.resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(merged.items())
    ]


def allowed(group: str, resource: str, verb: str, scope: Scope = "watched") -> bool:
    return any(
        a.group == group and a.resource == resource and verb in a.verbs and a.scope == scope
        for a in ACCESS
    )


def scanning_needed(namespaces: Sequence[str]) -> bool:
    """Whether kopf must list and watch namespaces (and CRDs): only for namespace globs.

    With exact names or all namespaces the operator needs no cluster-scoped access at all; the
    packaged installs use exact names. Globs need list/watch on namespaces and
    customresourcedefinitions cluster-wide on top of the rules above.
    """
    return any(c in ns for ns in namespaces for c in "*?!,")
