"""The CA bundle the pulpcore containers trust (mount_trusted_ca, mount_trusted_ca_configmap_key).

The bundle replaces the image's system bundle file, the one OpenSSL (and so Python's ssl module,
aiohttp and every remote Pulp syncs from) reads by default: a bundle must therefore hold every CA
Pulp is to trust, public ones included (trust-manager's `useDefaultCAs`, OpenShift's injected
bundle).

- mount_trusted_ca_configmap_key "name:key": that key of that ConfigMap (managed by hand or by
  cert-manager's trust-manager). "name" alone: the ConfigMap's only key, or its ca-bundle.crt.
- mount_trusted_ca alone: the ConfigMap N-user-ca-bundle, which the operator creates labelled for
  OpenShift's Cluster Network Operator; the CNO fills its key ca-bundle.crt with the cluster's
  trusted CAs. On other clusters whoever manages trust puts the bundle there. The operator never
  writes its data, and mounts it only once it holds a bundle: until then the pods keep the image's
  bundle and a condition says what is missing.
"""

from __future__ import annotations

from .. import names
from .common import meta
from .context import Ctx
from .inputs import Manifest

CA_BUNDLE = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
"""The system CA bundle of the Pulp images (OpenSSL's default CA file points to it)."""
BUNDLE_KEY = "ca-bundle.crt"
"""Key the Cluster Network Operator writes the bundle to."""
INJECT_LABEL = "config.openshift.io/inject-trusted-cabundle"
FIELD_KEY = "spec.mount_trusted_ca_configmap_key"


def _bundle_of(data: dict[str, str] | None, key: str) -> bool:
    return bool(data and data.get(key, "").strip())


def trusted_ca(ctx: Ctx) -> tuple[str, str] | None:
    """ConfigMap name and key of the CA bundle to mount; None when there is none (yet)."""
    spec = ctx.spec
    value = spec.mount_trusted_ca_configmap_key
    if value:
        cm, _, key = value.partition(":")
        if key:
            return cm, key
        data = dict(ctx.inputs.config_maps.get(cm) or {})
        if len(data) == 1:
            return cm, next(iter(data))
        if BUNDLE_KEY in data:
            return cm, BUNDLE_KEY
        if data:
            ctx.problems.add(
                FIELD_KEY,
                "setting",
                "TrustedCAKeyAmbiguous",
                f"ConfigMap {cm} ({FIELD_KEY}) has several keys and none is {BUNDLE_KEY}: name"
                f" the one with the CA bundle as {cm}:<key>",
            )
        return None
    if not spec.mount_trusted_ca:
        return None
    cm = names.trusted_ca_bundle(ctx.name)
    if not _bundle_of(dict(ctx.inputs.config_maps.get(cm) or {}), BUNDLE_KEY):
        ctx.problems.add(
            "spec.mount_trusted_ca",
            "platform",
            "TrustedCABundleEmpty",
            f"spec.mount_trusted_ca: ConfigMap {cm} has no CA bundle in its key {BUNDLE_KEY} yet"
            " (on OpenShift the Cluster Network Operator injects it; elsewhere put the PEM bundle"
            f" there or set {FIELD_KEY}); the pods keep the image's CA bundle until then",
        )
        return None
    return cm, BUNDLE_KEY


def trusted_ca_objects(ctx: Ctx) -> list[Manifest]:
    """The ConfigMap N-user-ca-bundle (mount_trusted_ca without a ConfigMap key). It has no `data`:
    server-side apply leaves what the CNO or a user wrote there alone, and the keep annotation
    keeps the prune from deleting a bundle someone put there when the mode changes."""
    spec = ctx.spec
    if not spec.mount_trusted_ca or spec.mount_trusted_ca_configmap_key:
        return []
    labels = {**names.labels(ctx.name, "trusted-ca"), INJECT_LABEL: "true"}
    return [
        meta(
            "ConfigMap",
            "v1",
            names.trusted_ca_bundle(ctx.name),
            ctx.namespace,
            labels,
            {names.KEEP_ANNOTATION: "true"},
        )
    ]
