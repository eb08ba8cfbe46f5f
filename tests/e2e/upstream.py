"""A Pulp as the upstream Go operator leaves it, for takeover tests.

The objects the upstream operator (pulp/pulp-operator, v1 API) creates for a Pulp CR, with its
names, labels, immutable fields and ownerReferences, written from ../shared/upstream-facts.md
and its manifests: the database StatefulSet with the volumeClaimTemplate ``<name>-postgres`` and
no serviceName; pods that run ``/bin/sh -c`` scripts with exec readiness probes; settings.py in
the Secret ``<name>-server`` holding the database password and SECRET_KEY; the admin password
mounted at /etc/pulp/pulp-admin-password; generated Secrets with upstream's keys and labels,
the ones it owns with an ownerReference to the Pulp (the file storage and Redis PVCs too); the
Secret names it writes into the spec. The pods run on the real node with the stand-in images
(tests/e2e/test_takeover.py); on the API server tier the objects only exist
(tests/integration/test_takeover.py).
"""

from __future__ import annotations

import base64
from typing import Any

from pulp_operator import secretgen
from pulp_operator.api.pulp import PulpSpec

Obj = dict[str, Any]
API_VERSION = "repo-manager.pulpproject.org/v1"
IMAGE = "quay.io/pulp/pulp-minimal"
WEB_IMAGE = "quay.io/pulp/pulp-web"


def labels(name: str, component: str) -> dict[str, str]:
    """settings.PulpcoreLabels of the upstream operator."""
    return {
        "app.kubernetes.io/name": f"pulp-{component}",
        "app.kubernetes.io/instance": f"pulp-{component}-{name}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "pulp",
        "app.kubernetes.io/managed-by": "pulp-operator",
        "app": f"pulp-{component}",
        "pulp_cr": name,
    }


def common_labels(name: str) -> dict[str, str]:
    """settings.CommonLabels: what upstream puts on its Secrets."""
    return {
        "app.kubernetes.io/part-of": "pulp",
        "app.kubernetes.io/managed-by": "pulp-operator",
        "pulp_cr": name,
    }


def pulp_cr(name: str, namespace: str, *, tag: str, nodeport: int, settings: str) -> Obj:
    """The CR as a user wrote it plus what upstream writes into it (the Secret names)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Pulp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image_version": tag,
            "image_web_version": tag,
            "database": {"postgres_storage_requirements": "1Gi"},
            "cache": {
                "enabled": True,
                "redis_image": "redis:7",
                "redis_storage_class": "standard",
                "redis_resource_requirements": {"requests": {"storage": "1Gi"}},
            },
            "file_storage_storage_class": "standard",
            "file_storage_size": "2Gi",
            "file_storage_access_mode": "ReadWriteOnce",
            "ingress_type": "nodeport",
            "nodeport_port": nodeport,
            "custom_pulp_settings": settings,
            "api": {"gunicorn_workers": 1},
            "content": {"gunicorn_workers": 1},
            "web": {"replicas": 1},
            # written by upstream's createSecrets (UpdateCRField)
            "admin_password_secret": f"{name}-admin-password",
            "pulp_secret_key": f"{name}-secret-key",
            "db_fields_encryption_secret": f"{name}-db-fields-encryption",
            "container_token_secret": f"{name}-container-auth",
        },
    }


def pulp_status(name: str, tag: str) -> Obj:
    """The status upstream leaves (its condition types, its memory fields)."""
    now = "2026-11-30T10:00:00Z"
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
        for t, r, m in (
            ("Pulp-Operator-Finished-Execution", "OperatorFinishedExecution", "All tasks ran"),
            ("Pulp-API-Ready", "ApiTasksFinished", "All API tasks ran successfully"),
            ("Pulp-Database-Ready", "DatabaseTasksFinished", "All Database tasks ran"),
        )
    ]
    return {
        "conditions": conditions,
        "image": f"{IMAGE}:{tag}",
        "admin_password_secret": f"{name}-admin-password",
        "db_fields_encryption_secret": f"{name}-db-fields-encryption",
        "container_token_secret": f"{name}-container-auth",
        "pulp_secret_key": f"{name}-secret-key",
        "storage_type": "File",
        "ingress_type": "nodeport",
        "managed_cache_enabled": True,
        "last_deployment_update": now,
    }


def owner(pulp: Obj) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Pulp",
        "name": pulp["metadata"]["name"],
        "uid": pulp["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(name: str, namespace: str, lbls: dict[str, str], refs: list[Obj] | None) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": lbls}
    if refs:
        meta["ownerReferences"] = refs
    return meta


def _secret(
    name: str, namespace: str, cr: str, data: dict[str, str], refs: list[Obj] | None
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(name, namespace, common_labels(cr), refs),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def secrets(pulp: Obj, custom: dict[str, str]) -> list[Obj]:
    """The Secrets upstream generates (values generated here), settings.py included."""
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    spec = PulpSpec.model_validate(pulp["spec"])
    refs = [owner(pulp)]

    def gen(kind: secretgen.Kind) -> dict[str, str]:
        return secretgen.generate(kind, name=name, namespace=ns, spec=spec)

    postgres = {**gen("postgres"), "host": f"{name}-database-svc", "port": "5432"}
    secret_key = gen("secret-key")["secret_key"]
    settings = settings_py(name, ns, postgres, secret_key, custom)
    return [
        _secret(f"{name}-admin-password", ns, name, gen("admin-password"), refs),
        _secret(f"{name}-secret-key", ns, name, {"secret_key": secret_key}, refs),
        _secret(f"{name}-db-fields-encryption", ns, name, gen("fernet-key"), None),
        _secret(f"{name}-container-auth", ns, name, gen("container-token"), None),
        _secret(f"{name}-postgres-configuration", ns, name, postgres, refs),
        _secret(f"{name}-server", ns, name, {"settings.py": settings}, refs),
    ]


def settings_py(
    name: str, ns: str, pg: dict[str, str], secret_key: str, custom: dict[str, str]
) -> str:
    """settings.py as upstream's pulpServerSecret writes it: the secrets inside."""
    root = custom.get("content_origin", f'"http://{name}-web-svc.{ns}.svc.cluster.local:24880"')
    lines = [
        "# Do not edit: this file is generated by pulp-operator",
        'DB_ENCRYPTION_KEY = "/etc/pulp/keys/database_fields.symmetric.key"',
        f"ANSIBLE_API_HOSTNAME = {root}",
        'ANSIBLE_CERTS_DIR = "/etc/pulp/keys/"',
        f"CONTENT_ORIGIN = {root}",
        'PRIVATE_KEY_PATH = "/etc/pulp/keys/container_auth_private_key.pem"',
        'PUBLIC_KEY_PATH = "/etc/pulp/keys/container_auth_public_key.pem"',
        'STATIC_ROOT = "/var/lib/operator/static/"',
        "TOKEN_AUTH_DISABLED = False",
        'TOKEN_SIGNATURE_ALGORITHM = "ES256"',
        "DATABASES = {",
        "  'default': {",
        f"    'HOST': '{name}-database-svc',",
        "    'ENGINE': 'django.db.backends.postgresql_psycopg2',",
        f"    'NAME': '{pg['database']}',",
        f"    'USER': '{pg['username']}',",
        f"    'PASSWORD': '{pg['password']}',",
        f"    'PORT': '{pg['port']}',",
        "    'CONN_MAX_AGE': 0,",
        f"    'OPTIONS': {{ 'sslmode': '{pg['sslmode']}' }},",
        "  }",
        "}",
        "CACHE_ENABLED = True",
        f'REDIS_HOST =  "{name}-redis-svc.{ns}"',
        'REDIS_PORT =  "6379"',
        'REDIS_PASSWORD = ""',
        'REDIS_DB = ""',
        f'TOKEN_SERVER = "http://{name}-api-svc.{ns}.svc.cluster.local:24817/token/"',
        f'SECRET_KEY = "{secret_key}"',
        *(f"{k.upper()} = {v}" for k, v in sorted(custom.items()) if k != "content_origin"),
    ]
    return "\n".join(lines) + "\n"


def _security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pulpcore_volumes(name: str, component: str) -> tuple[list[Obj], list[Obj]]:
    volumes: list[Obj] = [
        {
            "name": f"{name}-server",
            "secret": {
                "secretName": f"{name}-server",
                "items": [{"key": "settings.py", "path": "settings.py"}],
            },
        },
        {
            "name": f"{name}-db-fields-encryption",
            "secret": {
                "secretName": f"{name}-db-fields-encryption",
                "items": [
                    {
                        "key": "database_fields.symmetric.key",
                        "path": "database_fields.symmetric.key",
                    }
                ],
            },
        },
        {"name": "file-storage", "persistentVolumeClaim": {"claimName": f"{name}-file-storage"}},
    ]
    mounts: list[Obj] = [
        {
            "name": f"{name}-server",
            "mountPath": "/etc/pulp/settings.py",
            "subPath": "settings.py",
            "readOnly": True,
        },
        {
            "name": f"{name}-db-fields-encryption",
            "mountPath": "/etc/pulp/keys/database_fields.symmetric.key",
            "subPath": "database_fields.symmetric.key",
            "readOnly": True,
        },
        {"name": "file-storage", "mountPath": "/var/lib/pulp"},
    ]
    if component == "api":
        volumes += [
            {
                "name": f"{name}-admin-password",
                "secret": {
                    "secretName": f"{name}-admin-password",
                    "items": [{"key": "password", "path": "admin-password"}],
                },
            },
            {
                "name": f"{name}-container-auth-certs",
                "secret": {
                    "secretName": f"{name}-container-auth",
                    "items": [
                        {"key": k, "path": k}
                        for k in ("container_auth_public_key.pem", "container_auth_private_key.pem")
                    ],
                },
            },
        ]
        mounts += [
            {
                "name": f"{name}-admin-password",
                "mountPath": "/etc/pulp/pulp-admin-password",
                "subPath": "admin-password",
                "readOnly": True,
            },
            *(
                {
                    "name": f"{name}-container-auth-certs",
                    "mountPath": f"/etc/pulp/keys/{k}",
                    "subPath": k,
                    "readOnly": True,
                }
                for k in ("container_auth_private_key.pem", "container_auth_public_key.pem")
            ),
        ]
    if component == "worker":
        volumes.append({"name": f"{name}-ansible-tmp", "emptyDir": {}})
        mounts.append({"name": f"{name}-ansible-tmp", "mountPath": "/.ansible/tmp"})
    return volumes, mounts


_API_SCRIPT = """if which pulpcore-api
then
  PULP_API_ENTRYPOINT=("pulpcore-api")
else
  PULP_API_ENTRYPOINT=("gunicorn" "pulpcore.app.wsgi:application" "--name" "pulp-api")
fi
exec "${PULP_API_ENTRYPOINT[@]}" \\
--bind "[::]:24817" \\
--timeout "${PULP_GUNICORN_TIMEOUT}" \\
--workers "${PULP_API_WORKERS}" \\
--access-logfile -"""

_CONTENT_SCRIPT = """if which pulpcore-content
then
  PULP_CONTENT_ENTRYPOINT=("pulpcore-content")
else
  PULP_CONTENT_ENTRYPOINT=("gunicorn" "pulpcore.content:server" \
    "--worker-class" "aiohttp.GunicornWebWorker" "--name" "pulp-content")
fi
exec "${PULP_CONTENT_ENTRYPOINT[@]}" \\
--bind "[::]:24816" \\
--timeout "${PULP_GUNICORN_TIMEOUT}" \\
--workers "${PULP_CONTENT_WORKERS}" \\
--access-logfile -
"""


def _pulpcore(pulp: Obj, component: str, tag: str) -> Obj:
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    lbls = labels(name, component)
    volumes, mounts = _pulpcore_volumes(name, component)
    env: list[Obj] = [
        {"name": "POSTGRES_SERVICE_HOST", "value": f"{name}-database-svc"},
        {"name": "POSTGRES_SERVICE_PORT", "value": "5432"},
        {"name": "REDIS_SERVICE_HOST", "value": f"{name}-redis-svc.{ns}"},
        {"name": "REDIS_SERVICE_PORT", "value": "6379"},
    ]
    if component != "worker":
        env = [
            {"name": "PULP_GUNICORN_TIMEOUT", "value": "90"},
            {"name": f"PULP_{component.upper()}_WORKERS", "value": "1"},
            *env,
        ]
    container: Obj = {
        "name": component,
        "image": f"{IMAGE}:{tag}",
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "volumeMounts": mounts,
        "securityContext": _security(),
    }
    probe_timing = {"failureThreshold": 1, "initialDelaySeconds": 3, "periodSeconds": 10,
                    "successThreshold": 1, "timeoutSeconds": 10}  # fmt: skip
    if component == "api":
        container["command"] = ["/bin/sh"]
        container["args"] = ["-c", _API_SCRIPT]
        container["ports"] = [{"containerPort": 24817, "protocol": "TCP"}]
        container["readinessProbe"] = {
            "exec": {"command": ["/usr/bin/readyz.py", "/pulp/api/v3/status/"]},
            **probe_timing,
        }
        container["livenessProbe"] = {
            "httpGet": {"path": "/pulp/api/v3/status/", "port": 24817, "scheme": "HTTP"},
            "failureThreshold": 10, "initialDelaySeconds": 3, "periodSeconds": 20,
            "successThreshold": 1, "timeoutSeconds": 10,
        }  # fmt: skip
    elif component == "content":
        container["command"] = ["/bin/sh"]
        container["args"] = ["-c", _CONTENT_SCRIPT]
        container["ports"] = [{"containerPort": 24816, "protocol": "TCP"}]
        container["readinessProbe"] = {
            "exec": {"command": ["/usr/bin/readyz.py", "/pulp/content/"]},
            **probe_timing,
        }
    else:
        container["command"] = ["/usr/bin/pulp-worker"]
        container["readinessProbe"] = {
            "exec": {"command": ["/usr/bin/wait_on_postgres.py"]},
            **probe_timing,
        }
    init_script = "/usr/bin/wait_on_postgres.py\n/usr/bin/wait_on_database_migrations.sh"
    if component == "api":
        init_script = "mkdir -p /var/lib/pulp/{media,assets,tmp}\n" + init_script
    init = {
        "name": "init-container",
        "image": f"{IMAGE}:{tag}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh"],
        "args": ["-c", init_script],
        "env": env[-4:],
        "volumeMounts": [m for m in mounts if m["name"] in (
            f"{name}-server", f"{name}-db-fields-encryption", "file-storage")],
        "securityContext": _security(),
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_meta(f"{name}-{component}", ns, lbls, [owner(pulp)]),
            "annotations": {"email": "pulp-dev@redhat.com"},
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": lbls},
            "template": {
                "metadata": {
                    "labels": lbls,
                    "annotations": {"kubectl.kubernetes.io/default-container": component},
                },
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {"runAsUser": 700, "fsGroup": 700},
                    "initContainers": [init],
                    "containers": [container],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def _database(pulp: Obj) -> Obj:
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    lbls = labels(name, "database")
    secret = f"{name}-postgres-configuration"

    def ref(var: str, key: str) -> Obj:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    probe = {
        "exec": {"command": ["/bin/sh", "-i", "-c", "pg_isready -U pulp -h 127.0.0.1 -p 5432"]}
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(f"{name}-database", ns, lbls, [owner(pulp)]),
        "spec": {
            # no serviceName; the claim template <name>-postgres (both immutable)
            "replicas": 1,
            "selector": {"matchLabels": lbls},
            "template": {
                "metadata": {"labels": lbls},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {"runAsUser": 999, "fsGroup": 999},
                    "containers": [
                        {
                            "name": "postgres",
                            "image": "postgres:15",
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                ref("POSTGRESQL_DATABASE", "database"),
                                ref("POSTGRESQL_USER", "username"),
                                ref("POSTGRESQL_PASSWORD", "password"),
                                ref("POSTGRES_DB", "database"),
                                ref("POSTGRES_USER", "username"),
                                ref("POSTGRES_PASSWORD", "password"),
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                {
                                    "name": "POSTGRES_INITDB_ARGS",
                                    "value": "--auth-host=scram-sha-256",
                                },
                                {"name": "POSTGRES_HOST_AUTH_METHOD", "value": "scram-sha-256"},
                            ],
                            "ports": [{"containerPort": 5432, "name": "postgres"}],
                            "readinessProbe": {**probe, "initialDelaySeconds": 5,
                                               "periodSeconds": 10, "timeoutSeconds": 5,
                                               "failureThreshold": 6},
                            "livenessProbe": {**probe, "initialDelaySeconds": 30,
                                              "periodSeconds": 10, "timeoutSeconds": 5,
                                              "failureThreshold": 6},
                            "volumeMounts": [{"name": f"{name}-postgres",
                                              "mountPath": "/var/lib/postgresql/data",
                                              "subPath": "data"}],
                            "securityContext": _security(),
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": f"{name}-postgres"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }  # fmt: skip


def _redis(pulp: Obj) -> Obj:
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    lbls = labels(name, "cache")
    probe = {"exec": {"command": ["/bin/sh", "-i", "-c", "redis-cli -h 127.0.0.1 -p 6379"]},
             "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 5,
             "failureThreshold": 5}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"{name}-redis", ns, lbls, [owner(pulp)]),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": lbls},
            "template": {
                "metadata": {"labels": lbls},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {"runAsUser": 700, "fsGroup": 700},
                    "containers": [
                        {
                            "name": "redis",
                            "image": "redis:7",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 6379, "protocol": "TCP"}],
                            "readinessProbe": probe,
                            "livenessProbe": probe,
                            "volumeMounts": [{"name": f"{name}-redis-data", "mountPath": "/data"}],
                            "securityContext": _security(),
                        }
                    ],
                    "volumes": [
                        {
                            "name": f"{name}-redis-data",
                            "persistentVolumeClaim": {"claimName": f"{name}-redis-data"},
                        }
                    ],
                },
            },
        },
    }


def nginx_conf(name: str) -> str:
    # Upstream's conf names the published image's (Software Collections) paths for the pid and
    # temp files; the stand-in image has none of those, and /run is not writable in a pod here:
    # /tmp it is (the operator's own conf does the same).
    return f"""error_log /dev/stdout info;
pid /tmp/nginx.pid;
worker_processes 1;
events {{
    worker_connections 1024;
    accept_mutex off;
}}
http {{
    access_log /dev/stdout;
    client_body_temp_path /tmp/nginx-client-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;
    include mime.types;
    default_type application/octet-stream;
    sendfile on;
    upstream pulp-content {{
        server {name}-content-svc:24816;
    }}
    upstream pulp-api {{
        server {name}-api-svc:24817;
    }}
    server {{
        listen 8080 default_server deferred;
        listen [::]:8080 default_server deferred;
        server_name $hostname;
        client_max_body_size 10m;
        keepalive_timeout 5;
        proxy_read_timeout 120s;
        location /pulp/content/ {{
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Host $http_host;
            proxy_redirect off;
            proxy_pass http://pulp-content;
        }}
        location / {{
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Host $http_host;
            proxy_redirect off;
            proxy_pass http://pulp-api;
        }}
        include /opt/app-root/etc/nginx.default.d/*.conf;
    }}
}}
"""


def _web(pulp: Obj, tag: str) -> list[Obj]:
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    lbls = labels(name, "web")
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{name}-configmap", ns, lbls, [owner(pulp)]),
        "data": {"nginx.conf": nginx_conf(name)},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"{name}-web", ns, lbls, [owner(pulp)]),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": lbls},
            "template": {
                "metadata": {"labels": lbls},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [
                        {
                            "name": "web",
                            "image": f"{WEB_IMAGE}:{tag}",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/pulp/api/v3/status/", "port": 8080},
                                "initialDelaySeconds": 3,
                                "periodSeconds": 10,
                            },
                            "volumeMounts": [
                                {
                                    "name": f"{name}-nginx-conf",
                                    "mountPath": "/etc/nginx/nginx.conf",
                                    "subPath": "nginx.conf",
                                    "readOnly": True,
                                }
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": f"{name}-nginx-conf",
                            "configMap": {
                                "name": f"{name}-configmap",
                                "items": [{"key": "nginx.conf", "path": "nginx.conf"}],
                            },
                        }
                    ],
                },
            },
        },
    }
    return [config, deployment]


def _service(pulp: Obj, component: str, ports: list[Obj], **spec: Any) -> Obj:
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    suffix = {"database": "database-svc", "cache": "redis-svc"}.get(component, f"{component}-svc")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{name}-{suffix}", ns, labels(name, component), [owner(pulp)]),
        "spec": {"selector": labels(name, component), "ports": ports, **spec},
    }


def _claim(pulp: Obj, name: str, size: str, mode: str, component: str, owned: bool) -> Obj:
    ns = pulp["metadata"]["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, ns, labels(pulp["metadata"]["name"], component),
                          [owner(pulp)] if owned else None),
        "spec": {
            "accessModes": [mode],
            "storageClassName": "standard",
            "resources": {"requests": {"storage": size}},
        },
    }  # fmt: skip


def objects(pulp: Obj, *, tag: str, nodeport: int, custom: dict[str, str]) -> list[Obj]:
    """Everything upstream creates for the Pulp, in an order that can be created."""
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    refs = [owner(pulp)]
    rbac_labels = common_labels(name)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(name, ns, rbac_labels, refs)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(name, ns, rbac_labels, refs),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(name, ns, rbac_labels, refs),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        *secrets(pulp, custom),
        _claim(pulp, f"{name}-file-storage", "2Gi", "ReadWriteOnce", "storage", True),
        _claim(pulp, f"{name}-redis-data", "1Gi", "ReadWriteOnce", "cache", True),
        _service(pulp, "database", [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
                 clusterIP="None"),
        _database(pulp),
        _service(pulp, "cache", [{"port": 6379, "protocol": "TCP", "targetPort": 6379}]),
        _redis(pulp),
        _service(pulp, "api", [{"name": "api-24817", "port": 24817, "protocol": "TCP",
                                "targetPort": 24817}]),
        _service(pulp, "content", [{"name": "content-24816", "port": 24816, "protocol": "TCP",
                                    "targetPort": 24816}]),
        _pulpcore(pulp, "api", tag),
        _pulpcore(pulp, "content", tag),
        _pulpcore(pulp, "worker", tag),
        *_web(pulp, tag),
        _service(pulp, "web", [{"name": "web-8080", "port": 24880, "protocol": "TCP",
                                "targetPort": 8080, "nodePort": nodeport}], type="NodePort"),
    ]  # fmt: skip


def database_claim(pulp: Obj) -> Obj:
    """The claim the StatefulSet controller makes from the template (the API server tier has no
    controller: tests create it)."""
    name = pulp["metadata"]["name"]
    claim = _claim(pulp, f"{name}-postgres-{name}-database-0", "1Gi", "ReadWriteOnce",
                   "database", False)  # fmt: skip
    del claim["spec"]["storageClassName"]
    return claim


def jobs(pulp: Obj, tag: str) -> list[Obj]:
    """The migration and admin password Jobs (generateName, as upstream)."""
    name, ns = pulp["metadata"]["name"], pulp["metadata"]["namespace"]
    volumes, mounts = _pulpcore_volumes(name, "api")
    env = [
        {"name": "POSTGRES_SERVICE_HOST", "value": f"{name}-database-svc"},
        {"name": "POSTGRES_SERVICE_PORT", "value": "5432"},
    ]
    # A ReadWriteOnce file storage: the Jobs mount none (as this operator's, on one node both do).
    volumes = [v for v in volumes if v["name"] != "file-storage"]
    mounts = [m for m in mounts if m["name"] != "file-storage"]
    scripts = {
        "migration": (
            "/usr/bin/wait_on_postgres.py\n/usr/local/bin/pulpcore-manager migrate --noinput"
        ),
        "reset-admin-password": (
            "/usr/bin/wait_on_postgres.py\n/usr/bin/wait_on_database_migrations.sh\n"
            'PULP_ADMIN_PASSWORD=$(cat /etc/pulp/pulp-admin-password)\n'
            "/usr/local/bin/pulpcore-manager reset-admin-password"
            ' --password "${PULP_ADMIN_PASSWORD}"'
        ),
    }  # fmt: skip
    job_names = {"migration": "pulpcore-migration", "reset-admin-password": "reset-admin-password"}
    out = []
    for component, script in scripts.items():
        lbls = {**common_labels(name), "app.kubernetes.io/component": component}
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "generateName": f"{name}-{job_names[component]}-",
                    "namespace": ns,
                    "labels": lbls,
                    "ownerReferences": [owner(pulp)],
                },
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 3600,
                    "template": {
                        "metadata": {"labels": lbls},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": name,
                            "securityContext": {"runAsUser": 700, "fsGroup": 700},
                            "containers": [
                                {
                                    "name": component,
                                    "image": f"{IMAGE}:{tag}",
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["/bin/sh"],
                                    "args": ["-c", script],
                                    "env": env,
                                    "volumeMounts": mounts,
                                    "securityContext": _security(),
                                }
                            ],
                            "volumes": volumes,
                        },
                    },
                },
            }
        )
    return out
