"""ServiceAccount, Role and RoleBinding of the Pulp pods.

The pulpcore pods do not talk to the Kubernetes API: the Role grants nothing and the pods do not
mount a token. It exists so that the ServiceAccount carries the image pull secrets and so that a
cluster admin has one place to grant rights (e.g. an SCC on OpenShift).
"""

from __future__ import annotations

from .. import names
from .common import meta
from .context import Ctx
from .inputs import Manifest

COMPONENT = "rbac"


def rbac_objects(ctx: Ctx) -> list[Manifest]:
    spec = ctx.spec
    name = names.service_account(ctx.name)
    labels = {**dict(sorted((spec.sa_labels or {}).items())), **names.labels(ctx.name, COMPONENT)}
    account = meta("ServiceAccount", "v1", name, ctx.namespace, labels, spec.sa_annotations)
    account["automountServiceAccountToken"] = False
    if spec.image_pull_secrets:
        account["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    role = meta(
        "Role",
        "rbac.authorization.k8s.io/v1",
        name,
        ctx.namespace,
        names.labels(ctx.name, COMPONENT),
    )
    role["rules"] = []
    binding = meta(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        name,
        ctx.namespace,
        names.labels(ctx.name, COMPONENT),
    )
    binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}]
    return [account, role, binding]
