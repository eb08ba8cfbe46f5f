"""The OLM bundle under bundle/: ClusterServiceVersion, CRDs, metrics Service, annotations.

The CSV's Deployment and permissions are those of every other install (`objects`); its
WATCH_NAMESPACE comes from the olm.targetNamespaces annotation OLM puts on the pod, so every
install mode works with the namespaced rules (OLM copies them into each target namespace, or
makes them cluster-wide for AllNamespaces). alm-examples are the samples of config/samples/, the
related images the defaults of the Pulp model.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pulp_operator import permissions
from pulp_operator.api.crd import GROUP, KINDS, VERSION, Kind, crd, crd_filename
from pulp_operator.api.crd import to_yaml as crd_yaml
from pulp_operator.api.pulp import CacheSpec, DatabaseSpec, PulpSpec

from . import objects
from .files import HEADER, Files, to_yaml
from .settings import (
    CAPABILITY_LEVEL,
    CHANNEL,
    DEFAULT_NAMESPACE,
    MIN_KUBE_VERSION,
    OPERATOR,
    Install,
)
from .settings import (
    VERSION as OPERATOR_VERSION,
)

BUNDLE = "bundle"
CSV_NAME = f"{OPERATOR}.v{OPERATOR_VERSION}"
SAMPLES = "config/samples"

DESCRIPTION = """\
pulp-operator runs [Pulp 3](https://pulpproject.org), the repository manager for RPM, Debian,
container, Python, Ansible and file content, from one `Pulp` resource: pulpcore-api,
pulpcore-content, pulpcore-worker, pulp-web, PostgreSQL, Redis, storage, ingress, generated
secrets and migrations on upgrade.

It serves the `repo-manager.pulpproject.org/v1` API of the upstream Go operator (kinds `Pulp`,
`PulpBackup`, `PulpRestore`, same field and object names), so existing resources carry over.

* Configuration changes reach the pods (a configuration hash rolls them).
* Pods move to a new image only after its migration Job succeeded; a failed migration keeps the
  old version serving and says why in a condition.
* Data-protecting secrets are generated once and kept when the Pulp is deleted.
* Every problem is a Kubernetes-convention condition (`Ready`, `APIReady`, `DatabaseReady`,
  `MigrationsComplete`, ...) naming the field or object at fault.
* Prometheus metrics for reconciles, API errors, the work queue and each Pulp's conditions.
"""

_DISPLAY = {"Pulp": "Pulp", "PulpBackup": "Pulp Backup", "PulpRestore": "Pulp Restore"}
_OWNED_RESOURCES = {
    "Pulp": [
        ("Deployment", "v1"),
        ("StatefulSet", "v1"),
        ("Service", "v1"),
        ("Secret", "v1"),
        ("ConfigMap", "v1"),
        ("PersistentVolumeClaim", "v1"),
        ("Job", "v1"),
    ],
    "PulpBackup": [("PersistentVolumeClaim", "v1"), ("Job", "v1")],
    "PulpRestore": [("Job", "v1")],
}


def icon() -> dict[str, str]:
    data = resources.files("pulp_generate").joinpath("assets/icon.svg").read_bytes()
    return {"base64data": base64.b64encode(data).decode(), "mediatype": "image/svg+xml"}


def samples(root: Path) -> list[dict[str, Any]]:
    """The sample CR of each kind, from config/samples/ (one file per kind)."""
    out = []
    for kind in KINDS:
        path = root / SAMPLES / f"{GROUP}_{VERSION}_{kind.singular}.yaml"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        [sample] = [d for d in docs if d.get("kind") == kind.kind]
        out.append(sample)
    return out


def related_images() -> list[dict[str, str]]:
    """The images a Pulp runs by default (from the model defaults) and the operator's own."""
    spec = PulpSpec.model_fields
    pulp = f"{spec['image'].default}:{spec['image_version'].default}"
    web = f"{spec['image_web'].default}:{spec['image_web_version'].default}"
    database = DatabaseSpec.model_fields["postgres_image"].default

    redis = CacheSpec.model_fields["redis_image"].default
    return [
        {"name": "pulp-operator", "image": Install().image},
        {"name": "pulp-minimal", "image": pulp},
        {"name": "pulp-web", "image": web},
        {"name": "postgres", "image": database},
        {"name": "redis", "image": redis},
    ]


def _owned(kind: Kind) -> dict[str, Any]:
    doc = (kind.spec.__doc__ or "").strip().splitlines()[0]
    return {
        "name": kind.crd_name,
        "version": VERSION,
        "kind": kind.kind,
        "displayName": _DISPLAY[kind.kind],
        "description": doc.replace("Desired state of a", "A"),
        "resources": [{"kind": k, "version": v} for k, v in _OWNED_RESOURCES[kind.kind]],
        "statusDescriptors": [
            {
                "path": "conditions",
                "displayName": "Conditions",
                "description": "Kubernetes-convention conditions; Ready aggregates the others.",
                "x-descriptors": ["urn:alm:descriptor:io.kubernetes.conditions"],
            }
        ],
    }


def csv(root: Path) -> dict[str, Any]:
    install = Install()
    env = [
        {
            "name": objects.WATCH_NAMESPACE,
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['olm.targetNamespaces']"}
            },
        }
    ]
    rules = permissions.rules("watched") + permissions.rules("own")
    return {
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": CSV_NAME,
            "namespace": "placeholder",
            "annotations": {
                "alm-examples": json.dumps(samples(root), indent=2, sort_keys=True),
                "capabilities": CAPABILITY_LEVEL,
                "categories": "Integration & Delivery,Storage",
                "containerImage": install.image,
                "description": "Runs Pulp 3 repository managers from Pulp resources",
                "operators.operatorframework.io/suggested-namespace": DEFAULT_NAMESPACE,
                "support": "Pulp community",
            },
            "labels": {"operatorframework.io/arch.amd64": "supported"},
        },
        "spec": {
            "displayName": "Pulp Operator",
            "description": DESCRIPTION,
            "version": OPERATOR_VERSION,
            "minKubeVersion": MIN_KUBE_VERSION,
            "maturity": "alpha",
            "keywords": ["pulp", "pulpcore", "repository", "rpm", "container", "artifact"],
            "provider": {"name": "Pulp Project", "url": "https://pulpproject.org"},
            "maintainers": [{"name": "Pulp Project", "email": "pulp-list@redhat.com"}],
            "links": [
                {"name": "Pulp", "url": "https://pulpproject.org"},
                {"name": "Pulp documentation", "url": "https://pulpproject.org/pulpcore/docs/"},
            ],
            "icon": [icon()],
            "installModes": [
                {"type": mode, "supported": True}
                for mode in ("OwnNamespace", "SingleNamespace", "MultiNamespace", "AllNamespaces")
            ],
            "install": {
                "strategy": "deployment",
                "spec": {
                    "deployments": [
                        {
                            "name": OPERATOR,
                            "label": dict(objects.meta(OPERATOR)["labels"]),
                            "spec": objects.deployment_spec(install, env),
                        }
                    ],
                    "permissions": [{"serviceAccountName": OPERATOR, "rules": rules}],
                },
            },
            "customresourcedefinitions": {"owned": [_owned(kind) for kind in KINDS]},
            "relatedImages": related_images(),
        },
    }


def bundle_annotations() -> dict[str, Any]:
    return {
        "annotations": {
            "operators.operatorframework.io.bundle.mediatype.v1": "registry+v1",
            "operators.operatorframework.io.bundle.manifests.v1": "manifests/",
            "operators.operatorframework.io.bundle.metadata.v1": "metadata/",
            "operators.operatorframework.io.bundle.package.v1": OPERATOR,
            "operators.operatorframework.io.bundle.channels.v1": CHANNEL,
            "operators.operatorframework.io.bundle.channel.default.v1": CHANNEL,
        }
    }


def dockerfile() -> str:
    labels = "".join(
        f"LABEL {key}={value}\n" for key, value in bundle_annotations()["annotations"].items()
    )
    return (
        HEADER
        + "# The bundle image:\n"
        + "#   podman build -f bundle.Dockerfile -t <registry>/pulp-operator-bundle .\n"
        + "FROM scratch\n"
        + labels
        + "COPY bundle/manifests /manifests/\nCOPY bundle/metadata /metadata/\n"
    )


def bundle_files(root: Path) -> Files:
    service = objects.metrics_service(Install())
    del service["metadata"]["namespace"]  # OLM creates it in the install namespace
    files: Files = {
        f"{BUNDLE}/manifests/{OPERATOR}.clusterserviceversion.yaml": HEADER + to_yaml(csv(root)),
        f"{BUNDLE}/manifests/{objects.METRICS_SERVICE}_v1_service.yaml": HEADER + to_yaml(service),
        f"{BUNDLE}/metadata/annotations.yaml": HEADER + to_yaml(bundle_annotations()),
        "bundle.Dockerfile": dockerfile(),
    }
    for kind in KINDS:
        files[f"{BUNDLE}/manifests/{crd_filename(kind)}"] = crd_yaml(crd(kind))
    return files
