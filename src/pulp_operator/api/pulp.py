"""The Pulp kind of repo-manager.pulpproject.org/v1: spec and status models.

Field names follow the upstream API (snake_case, plus the camelCase probe fields it inherited), so a
Pulp CR written for the upstream operator is accepted as is. Defaults live here; the CRD and the
reconciler both derive from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .types import (
    AnnotationMap,
    ConfigKey,
    ConfigMapKeyRef,
    Duration,
    EnvVar,
    Hostname,
    Image,
    ImageTag,
    KubeObject,
    KubeObjectList,
    LabelMap,
    Model,
    NginxSize,
    ObjectName,
    PositiveQuantity,
    PulpContainer,
    PulpJob,
    ResourceRequirements,
)
from .validation import Rule, rules

IngressType = Literal[
    "none",
    "None",
    "ingress",
    "Ingress",
    "route",
    "Route",
    "loadbalancer",
    "LoadBalancer",
    "nodeport",
    "NodePort",
]


def _set(field: str) -> str:
    """CEL: the string field is present and not empty."""
    return f"(has(self.{field}) && self.{field} != '')"


class SpecModel(Model):
    model_config = ConfigDict(use_attribute_docstrings=True)


class HPA(SpecModel):
    """HorizontalPodAutoscaler settings of a component."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            Rule(
                "!has(self.min_replicas) || self.min_replicas <= self.max_replicas",
                "hpa.min_replicas must not be greater than hpa.max_replicas",
            )
        )
    )

    enabled: bool = False
    """Create an HPA for this component; the Deployment's replicas are then left to it."""
    min_replicas: int = Field(default=1, ge=1)
    """Lower limit of replicas."""
    max_replicas: int = Field(ge=1)
    """Upper limit of replicas."""
    target_cpu_utilization_percentage: int | None = Field(default=None, ge=1, le=100)
    """Target average CPU utilisation in percent of the requested CPU (50 when neither target is
    set)."""
    target_memory_utilization_percentage: int | None = Field(default=None, ge=1, le=100)
    """Target average memory utilisation in percent of the requested memory."""

    @model_validator(mode="after")
    def _min_le_max(self) -> HPA:
        if self.min_replicas > self.max_replicas:
            raise ValueError("hpa.min_replicas must not be greater than hpa.max_replicas")
        return self


class PodPlacement(SpecModel):
    """Scheduling fields shared by the components."""

    affinity: KubeObject | None = None
    """core/v1 Affinity of the pods."""
    node_selector: LabelMap | None = None
    """Node labels the pods must run on."""
    tolerations: KubeObjectList | None = None
    """core/v1 Tolerations of the pods."""


class WorkloadSpec(PodPlacement):
    """Fields shared by the Deployments the operator runs for a component."""

    replicas: int = Field(default=1, ge=0)
    """Number of pods (ignored while an HPA is enabled)."""
    hpa: HPA | None = None
    topology_spread_constraints: KubeObjectList | None = None
    """core/v1 TopologySpreadConstraints of the pods."""
    resource_requirements: ResourceRequirements | None = None
    """Resources of the main container."""
    readiness_probe: KubeObject | None = Field(default=None, alias="readinessProbe")
    """core/v1 Probe replacing the default readiness probe."""
    liveness_probe: KubeObject | None = Field(default=None, alias="livenessProbe")
    """core/v1 Probe replacing the default liveness probe."""
    pdb: KubeObject | None = None
    """policy/v1 PodDisruptionBudgetSpec; a PDB is created when set (its selector is set by the
    operator)."""
    strategy: KubeObject | None = None
    """apps/v1 DeploymentStrategy."""
    env_vars: list[EnvVar] | None = None
    """Extra environment variables of the main container."""
    deployment_annotations: AnnotationMap | None = None
    """Annotations of the Deployment."""
    pod_labels: LabelMap | None = None
    """Extra labels of the pods."""


class PulpcoreSpec(WorkloadSpec):
    init_container: PulpContainer | None = None
    """Settings of the init container that waits for the database and its migrations."""


class GunicornSpec(PulpcoreSpec):
    gunicorn_timeout: int = Field(default=90, ge=1)
    """gunicorn --timeout in seconds."""
    gunicorn_workers: int = Field(default=2, ge=1)
    """gunicorn --workers."""
    gunicorn_access_logformat: str | None = None
    """gunicorn --access-logformat."""


class ApiSpec(GunicornSpec):
    """pulpcore-api: the REST API."""


class ContentSpec(GunicornSpec):
    """pulpcore-content: serves content to clients."""


class WorkerSpec(PulpcoreSpec):
    """pulpcore-worker: runs tasks."""


class ResourceManagerSpec(SpecModel):
    """pulpcore-resource-manager (pulpcore releases before 3.16 only): all tasks pass through the
    one active resource manager; further replicas are hot spares that take over when it stops."""

    replicas: int = Field(default=1, ge=0)
    """Number of resource manager pods: one is active, the others wait for its lock. Their
    pods otherwise take the worker's settings."""


class WebSpec(WorkloadSpec):
    """pulp-web: the nginx reverse proxy in front of api and content."""

    service_annotations: AnnotationMap | None = None
    """Annotations of the web Service."""
    tls_termination_mechanism: Literal["edge", "Edge", "passthrough", "Passthrough"] = "edge"
    """TLS termination of the Route."""


class DatabaseSpec(PodPlacement):
    """The PostgreSQL database: managed by the operator, or external."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            Rule(
                f"!({_set('external_db_secret')} && ({_set('pvc')}"
                f" || {_set('postgres_storage_class')}))",
                "database.external_db_secret cannot be combined with database.pvc or"
                " database.postgres_storage_class",
            ),
            Rule(
                f"!({_set('pvc')} && {_set('postgres_storage_class')})",
                "set only one of database.pvc and database.postgres_storage_class",
            ),
        )
    )

    external_db_secret: ObjectName | None = None
    """Secret with POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USERNAME, POSTGRES_PASSWORD,
    POSTGRES_DB_NAME and POSTGRES_SSLMODE of an external database; no database is deployed then."""
    version: str | None = None
    """PostgreSQL major release expected of postgres_image (the image decides which runs): a
    managed database whose image tag has another major is reported (DatabaseVersionMismatch)."""
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    """Port of the managed database."""
    postgres_ssl_mode: Literal[
        "disable", "allow", "prefer", "require", "verify-ca", "verify-full"
    ] = "prefer"
    """sslmode of the connection to the managed database."""
    postgres_image: Image = "postgres:15"
    """Image of the managed database."""
    postgres_extra_args: list[str] | None = None
    """Extra arguments of the postgres process."""
    postgres_data_path: str = "/var/lib/postgresql/data/pgdata"
    """PGDATA."""
    postgres_initdb_args: str = "--auth-host=scram-sha-256"
    """POSTGRES_INITDB_ARGS."""
    postgres_host_auth_method: str = "scram-sha-256"
    """POSTGRES_HOST_AUTH_METHOD."""
    postgres_resource_requirements: ResourceRequirements | None = None
    """Resources of the database container."""
    postgres_storage_requirements: PositiveQuantity = "8Gi"
    """Size of the database volume."""
    postgres_storage_class: ObjectName | None = None
    """StorageClass of the database volume (the cluster default when not set)."""
    pvc: ObjectName | None = None
    """Existing PersistentVolumeClaim for the database data."""
    readiness_probe: KubeObject | None = Field(default=None, alias="readinessProbe")
    """core/v1 Probe replacing the default readiness probe of PostgreSQL."""
    liveness_probe: KubeObject | None = Field(default=None, alias="livenessProbe")
    """core/v1 Probe replacing the default liveness probe of PostgreSQL."""
    pod_labels: LabelMap | None = None
    """Extra labels of the database pod."""

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSpec:
        if self.external_db_secret and (self.pvc or self.postgres_storage_class):
            raise ValueError(
                "database.external_db_secret cannot be combined with database.pvc or"
                " database.postgres_storage_class"
            )
        if self.pvc and self.postgres_storage_class:
            raise ValueError("set only one of database.pvc and database.postgres_storage_class")
        return self


class CacheSpec(PodPlacement):
    """Redis: managed by the operator, external, or disabled."""

    external_cache_secret: ObjectName | None = None
    """Secret with REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and REDIS_DB of an external Redis."""
    enabled: bool = True
    """Use a cache (Redis)."""
    redis_image: Image = "redis:latest"
    """Image of the managed Redis."""
    redis_storage_class: ObjectName | None = None
    """StorageClass of a PersistentVolumeClaim for the managed Redis (emptyDir when not set)."""
    redis_port: int = Field(default=6379, ge=1, le=65535)
    """Port of the managed Redis Service."""
    redis_resource_requirements: ResourceRequirements | None = None
    """Resources of the Redis container; requests.storage sizes its PVC (1Gi by default)."""
    pvc: ObjectName | None = None
    """Existing PersistentVolumeClaim for the Redis data."""
    readiness_probe: KubeObject | None = Field(default=None, alias="readinessProbe")
    """core/v1 Probe replacing the default readiness probe of Redis."""
    liveness_probe: KubeObject | None = Field(default=None, alias="livenessProbe")
    """core/v1 Probe replacing the default liveness probe of Redis."""
    strategy: KubeObject | None = None
    """apps/v1 DeploymentStrategy of the Redis Deployment."""
    deployment_annotations: AnnotationMap | None = None
    """Annotations of the Redis Deployment."""
    pod_labels: LabelMap | None = None
    """Extra labels of the Redis pod."""


class TelemetrySpec(SpecModel):
    """OpenTelemetry metrics of pulpcore-api through a collector sidecar: pulpcore sends them over
    OTLP to the sidecar, which serves them to Prometheus on port 8889 (Service
    <name>-otel-collector-svc)."""

    enabled: bool = False
    """Run the collector sidecar in the api pods and turn on pulpcore's metrics (OTEL_ENABLED)."""
    exporter_otlp_protocol: Literal["http/protobuf", "http/json", "grpc"] = "http/protobuf"
    """OTEL_EXPORTER_OTLP_PROTOCOL of the api container (pulpcore's own metrics always use
    http/protobuf; the sidecar receives both OTLP over HTTP, port 4318, and gRPC, port 4317)."""
    otel_collector_image: Image = "docker.io/otel/opentelemetry-collector"
    """Repository of the collector image (it must include the otlp receiver and the prometheus
    exporter)."""
    otel_collector_image_version: ImageTag = "latest"
    """Tag of the collector image."""
    resource_requirements: ResourceRequirements | None = None
    """Resources of the collector container (requests 50m CPU and 128Mi memory by default)."""


class LdapSpec(SpecModel):
    config: ObjectName | None = None
    """Secret with the auth_ldap_* settings."""
    ca: ObjectName | None = None
    """Secret with ca.crt of the LDAP server."""


_STORAGE_FIELDS = (
    "file_storage_storage_class",
    "pvc",
    "object_storage_s3_secret",
    "object_storage_azure_secret",
    "object_storage_gcs_secret",
)
_STORAGE_COUNT = " + ".join(f"({_set(f)} ? 1 : 0)" for f in _STORAGE_FIELDS)
STORAGE_MESSAGE = (
    "exactly one storage type must be set: file_storage_storage_class, pvc,"
    " object_storage_s3_secret, object_storage_azure_secret or object_storage_gcs_secret"
)
FILE_STORAGE_MESSAGE = (
    "file_storage_size and file_storage_access_mode apply only with file_storage_storage_class"
)
INGRESS_HOST_MESSAGE = "ingress_host is required when ingress_type is ingress"
CHECKSUM_MESSAGE = "allowed_content_checksums must include sha256"


class PulpSpec(SpecModel):
    """Desired state of a Pulp."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            Rule(f"{_STORAGE_COUNT} == 1", STORAGE_MESSAGE),
            Rule(
                f"{_set('file_storage_storage_class')} || !({_set('file_storage_size')}"
                f" || {_set('file_storage_access_mode')})",
                FILE_STORAGE_MESSAGE,
            ),
            Rule(
                f"!has(self.ingress_type) || self.ingress_type.lowerAscii() != 'ingress'"
                f" || {_set('ingress_host')}",
                INGRESS_HOST_MESSAGE,
            ),
            Rule(
                "!has(self.allowed_content_checksums)"
                " || 'sha256' in self.allowed_content_checksums",
                CHECKSUM_MESSAGE,
            ),
        )
    )

    unmanaged: bool = False
    """Stop all changes to the objects of this Pulp."""
    enable_debugging: bool = False
    """Log at DEBUG level."""
    keep_data_on_delete: bool = True
    """Keep the data (PVCs, database credentials and encryption keys) when the Pulp is deleted, so
    that a Pulp created again with the same name finds it. False deletes them with the Pulp."""

    # Storage
    file_storage_size: PositiveQuantity | None = None
    """Size of the file storage PVC (with file_storage_storage_class)."""
    file_storage_access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] | None = None
    """Access mode of the file storage PVC (with file_storage_storage_class)."""
    file_storage_storage_class: ObjectName | None = None
    """StorageClass of a file storage PVC created by the operator."""
    pvc: ObjectName | None = None
    """Existing PersistentVolumeClaim for the file storage."""
    object_storage_s3_secret: ObjectName | None = None
    """Secret with the S3 settings (s3-bucket-name, s3-access-key-id, s3-secret-access-key,
    s3-region or s3-endpoint)."""
    object_storage_azure_secret: ObjectName | None = None
    """Secret with the Azure settings (azure-account-name, azure-account-key, azure-container)."""
    object_storage_gcs_secret: ObjectName | None = None
    """Secret with the Google Cloud Storage settings (gcs-bucket-name, gcs-key.json)."""
    redirect_to_object_storage: bool = False
    """Redirect artifact downloads to the object storage."""

    # Secrets
    admin_password_secret: ObjectName | None = None
    """Secret (key password) with the admin password; generated as <name>-admin-password."""
    pulp_secret_key: ObjectName | None = None
    """Secret (key secret_key) with Django's SECRET_KEY; generated as <name>-secret-key."""
    db_fields_encryption_secret: ObjectName | None = None
    """Secret (key database_fields.symmetric.key) with the Fernet key; generated as
    <name>-db-fields-encryption."""
    container_token_secret: ObjectName | None = None
    """Secret with the container token key pair; generated as <name>-container-auth."""
    container_auth_public_key_name: ConfigKey = "container_auth_public_key.pem"
    """Key of container_token_secret holding the public key."""
    container_auth_private_key_name: ConfigKey = "container_auth_private_key.pem"
    """Key of container_token_secret holding the private key."""
    signing_secret: ObjectName | None = None
    """Secret with signing_service.gpg (an ASCII-armored OpenPGP secret key, passphrase-protected
    or not) and optionally signing_service.passphrase; used by the signing services of
    signing_scripts."""
    signing_scripts: ObjectName | None = None
    """Secret with the signing scripts: collection_script.sh, container_script.sh, apt_script.sh
    and/or rpm_script.sh, each registered as a signing service by a Job (needs signing_secret)."""
    sso_secret: ObjectName | None = None
    """Secret with the Keycloak single sign-on settings (social_auth_keycloak_key,
    social_auth_keycloak_secret, social_auth_keycloak_public_key, keycloak_host,
    keycloak_protocol, keycloak_port, keycloak_realm; optional keycloak_admin_role,
    keycloak_group_token_claim, keycloak_role_token_claim, keycloak_host_loopback)."""
    ldap: LdapSpec | None = None
    """LDAP authentication (django-auth-ldap) from Secrets."""

    # Networking
    ingress_type: IngressType = "none"
    """How Pulp is exposed: none, ingress, route, loadbalancer or nodeport (any case)."""
    ingress_annotations: AnnotationMap | None = None
    """Annotations of the Ingress."""
    ingress_class_name: ObjectName | None = None
    """IngressClass of the Ingress (the cluster default when not set)."""
    is_nginx_ingress: bool = False
    """The IngressClass is nginx: route to api and content directly, without pulp-web."""
    ingress_host: Hostname | None = None
    """Host name of the Ingress."""
    ingress_tls_secret: ObjectName | None = None
    """TLS Secret of the Ingress (https CONTENT_ORIGIN when set)."""
    route_host: str | None = None
    """Host name of the Routes (OpenShift)."""
    route_labels: LabelMap | None = None
    """Labels of the Routes."""
    route_annotations: AnnotationMap | None = None
    """Annotations of the Routes."""
    route_tls_secret: ObjectName | None = None
    """Secret with the certificate (certificate, key, caCertificate) of the Routes."""
    nodeport_port: int | None = Field(default=None, ge=1, le=65535)
    """nodePort of the web Service with ingress_type nodeport (assigned by Kubernetes if unset)."""
    loadbalancer_protocol: Literal["http", "https"] = "http"
    """Protocol of the web Service with ingress_type loadbalancer."""
    loadbalancer_port: int = Field(default=80, ge=1, le=65535)
    """Port of the web Service with ingress_type loadbalancer."""
    haproxy_timeout: Duration = "180s"
    """haproxy.router.openshift.io/timeout of the Routes."""
    nginx_client_max_body_size: NginxSize = "10m"
    """client_max_body_size of pulp-web's nginx (largest upload)."""
    nginx_proxy_body_size: NginxSize = "0"
    """nginx.ingress.kubernetes.io/proxy-body-size of an nginx Ingress."""
    nginx_proxy_read_timeout: Duration = "120s"
    """proxy_read_timeout of pulp-web's nginx."""
    nginx_proxy_connect_timeout: Duration = "120s"
    """proxy_connect_timeout of pulp-web's nginx."""
    nginx_proxy_send_timeout: Duration = "120s"
    """proxy_send_timeout of pulp-web's nginx."""
    ipv6_disabled: bool | None = None
    """Bind pulpcore and nginx to IPv4 only."""

    # Images
    image: Image = "quay.io/pulp/pulp-minimal"
    """Repository of the Pulp image."""
    image_version: ImageTag = "stable"
    """Tag of the Pulp image (a pulpcore release such as 3.85.0, or stable)."""
    image_web: Image = "quay.io/pulp/pulp-web"
    """Repository of the pulp-web image."""
    image_web_version: ImageTag = "stable"
    """Tag of the pulp-web image (must equal image_version unless inhibit_version_constraint)."""
    inhibit_version_constraint: bool = False
    """Allow image_version and image_web_version to differ (reported as ImageVersionMismatch
    otherwise, when pulp-web runs)."""
    allow_downgrade: bool = False
    """Run an image_version older than the newest release whose migrations ran on the database
    (status.schema_version). Refused otherwise: old code on a newer schema can fail or corrupt
    data; going back safely means restoring a backup."""
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    """imagePullPolicy of every Pulp container."""
    image_pull_secrets: list[ObjectName] | None = None
    """Image pull Secrets of the Pulp ServiceAccount."""

    # Components
    api: ApiSpec = Field(default_factory=ApiSpec)
    content: ContentSpec = Field(default_factory=ContentSpec)
    worker: WorkerSpec = Field(default_factory=WorkerSpec)
    resource_manager: ResourceManagerSpec | None = None
    """The resource manager of pulpcore < 3.16 (one replica when omitted; ignored by later
    releases, which have none)."""
    web: WebSpec | None = None
    database: DatabaseSpec = Field(default_factory=DatabaseSpec)
    cache: CacheSpec | None = None
    """Redis cache; without this block no cache is used (as upstream)."""
    telemetry: TelemetrySpec | None = None

    # Settings and jobs
    custom_pulp_settings: ObjectName | None = None
    """ConfigMap whose keys are Pulp settings (lowercase names, Python literal values)."""
    allowed_content_checksums: (
        list[Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]] | None
    ) = None
    """Checksum algorithms Pulp accepts (must include sha256)."""
    hide_guarded_distributions: bool = False
    """HIDE_GUARDED_DISTRIBUTIONS: do not list content guarded distributions."""
    mount_trusted_ca: bool = False
    """Trust the CA bundle of the ConfigMap <name>-user-ca-bundle (key ca-bundle.crt), which the
    operator creates for OpenShift's Cluster Network Operator to fill; elsewhere fill it yourself
    or set mount_trusted_ca_configmap_key."""
    mount_trusted_ca_configmap_key: ConfigMapKeyRef | None = None
    """ConfigMap and key of the CA bundle to trust, as configmap-name:key (or configmap-name: its
    only key, or ca-bundle.crt). It replaces the image's system bundle."""
    sa_annotations: AnnotationMap | None = None
    """Annotations of the Pulp ServiceAccount."""
    sa_labels: LabelMap | None = None
    """Labels of the Pulp ServiceAccount."""
    admin_password_job: PulpJob | None = None
    """Settings of the Job that sets the admin password."""
    migration_job: PulpJob | None = None
    """Settings of the database migration Job."""
    signing_job: PulpJob | None = None
    """Settings of the Job that registers the signing services."""
    disable_migrations: bool = False
    """Do not run database migrations."""

    @field_validator("allowed_content_checksums")
    @classmethod
    def _checksums(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and "sha256" not in value:
            raise ValueError(CHECKSUM_MESSAGE)
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> PulpSpec:
        chosen = [f for f in _STORAGE_FIELDS if getattr(self, f)]
        if len(chosen) != 1:
            detail = f" (set: {', '.join(chosen)})" if chosen else " (none is set)"
            extra = ""
            if not self.file_storage_storage_class and (
                self.file_storage_size or self.file_storage_access_mode
            ):
                extra = "; " + FILE_STORAGE_MESSAGE
            raise ValueError(STORAGE_MESSAGE + detail + extra)
        if not self.file_storage_storage_class and (
            self.file_storage_size or self.file_storage_access_mode
        ):
            raise ValueError(FILE_STORAGE_MESSAGE)
        if self.ingress_kind == "ingress" and not self.ingress_host:
            raise ValueError(INGRESS_HOST_MESSAGE)
        return self

    # Derived values used by the builders.
    @property
    def ingress_kind(self) -> str:
        return self.ingress_type.lower()

    @property
    def storage_type(self) -> str:
        if self.object_storage_s3_secret:
            return "S3"
        if self.object_storage_azure_secret:
            return "Azure"
        if self.object_storage_gcs_secret:
            return "GCS"
        return "File"


class Condition(Model):
    """metav1.Condition."""

    type: str
    """Condition type, e.g. Ready or APIReady."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str
    """CamelCase reason (docs/troubleshooting.md lists them)."""
    message: str = ""
    """What is wrong, for humans: names the field or object."""
    last_transition_time: str = Field(alias="lastTransitionTime")
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    """The generation of the spec the condition describes."""


class PulpStatus(SpecModel):
    """Observed state of a Pulp."""

    model_config = ConfigDict(extra="ignore")

    conditions: list[Condition] = Field(default_factory=list)
    """Kubernetes-convention conditions; Ready aggregates the others."""
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    """The generation of the spec the status describes."""
    image: str | None = None
    """The Pulp image (image:tag) the pods run, after its migrations succeeded."""
    version: str | None = None
    """The pulpcore release every pulpcore pod runs (the image tag); during an upgrade, the one
    being replaced."""
    target_version: str | None = None
    """While an upgrade is in flight: the release it moves to (spec.image_version)."""
    upgrade_phase: Literal["Migrating", "MigrationFailed", "Rolling", "DowngradeRefused"] | None = (
        None
    )
    """Where a version change stands: the new image migrates the database, the pods roll, or it
    stopped (a failed migration, a refused downgrade)."""
    schema_version: str | None = None
    """The newest pulpcore release whose migrations ran on the database."""
    web_image: str | None = None
    """The pulp-web image (image:tag) the web pods run."""
    url: str | None = None
    """Where Pulp is reached (CONTENT_ORIGIN)."""
    migrated_image: str | None = None
    """The image whose migrations completed last."""
    migrated_settings: str | None = None
    """The storage backend and content app flags the last completed migration copied into Pulp's
    default domain (a change runs the migrations again)."""
    admin_password_secret: str | None = None
    """The Secret with the admin password in use."""
    db_fields_encryption_secret: str | None = None
    """The Secret with the Fernet key in use."""
    container_token_secret: str | None = None
    """The Secret with the container token key pair in use."""
    pulp_secret_key: str | None = None
    """The Secret with Django's SECRET_KEY in use."""
    external_cache_secret: str | None = None
    """The external Redis Secret in use."""
    object_storage_s3_secret: str | None = None
    """The S3 storage Secret in use."""
    object_storage_azure_secret: str | None = None
    """The Azure storage Secret in use."""
    object_storage_gcs_secret: str | None = None
    """The Google Cloud Storage Secret in use."""
    ingress_type: str | None = None
    """The ingress_type in use."""
    ingress_class_name: str | None = None
    """The IngressClass in use."""
    storage_type: str | None = None
    """File, S3, Azure or GCS."""
    managed_cache_enabled: bool | None = None
    """Whether the operator runs a Redis for this Pulp."""
    telemetry_enabled: bool | None = None
    """Whether telemetry is on."""
    allowed_content_checksums: str | None = None
    """The checksums last configured (JSON list)."""
    redirect_to_object_storage: bool | None = None
    """redirect_to_object_storage last applied."""
    hide_guarded_distributions: bool | None = None
    """hide_guarded_distributions last applied."""
    last_deployment_update: str | None = None
    """When the deployments were last restarted for a configuration change."""
    admin_password_hash: str | None = None
    """Hash of the admin password last set (not the password)."""
    signing_services_hash: str | None = None
    """Hash of the signing key and scripts whose signing services were registered last."""
    signing_key_fingerprint: str | None = None
    """Fingerprint of the signing key of signing_secret."""


def parse_spec(spec: dict[str, Any] | None) -> PulpSpec:
    return PulpSpec.model_validate(spec or {})
