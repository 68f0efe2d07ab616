"""Kubernetes manifests for running a package with Calrissian as a Job (seed 003, DESIGN.md §4).

Why a module of its own: the manifests are the contract with an operator's cluster, so they are built
as plain data, validated offline against the Kubernetes OpenAPI schemas (``kubernetes-validate``) and
checked for least privilege by the tests, without any cluster. ``eopack run APP --runner calrissian``
writes them; ``kubectl apply -f`` applies them.

What Calrissian needs from the API (read from its source, Terradue/calrissian dask-gateway branch,
``calrissian/k8s.py`` and ``calrissian/dask.py``):

* pods ``create`` (a pod per CWL step), ``list`` + ``watch`` (it lists and watches its pods by name,
  and finds its own pod by name to copy the PVC mounts into the tool pods), ``delete`` (cleanup),
  ``get`` (reading single pods);
* pods/log ``get`` (it follows each tool pod's log into the usage report and tool logs);
* configmaps ``create`` (one ``/etc/dask`` gateway configuration per Dask step), ``get`` (looks up the
  optional ``--dask-script-configmap``) and ``delete`` (removes the per-step one afterwards).

Nothing else: no secrets, no cluster-wide rights, no ``update``/``patch``. Tool pods run as a second
ServiceAccount bound to nothing and without a mounted token, so a tool cannot start pods itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALRISSIAN_RULES",
    "DEFAULT_IMAGE",
    "MOUNT",
    "JobSpec",
    "k8s_name",
    "manifests",
    "validate_manifests",
]

# The dask-gateway branch image (0.18.1 on PyPI has no Dask support); seed 003 runs `calrissian:0.19.0`.
DEFAULT_IMAGE = "calrissian:0.19.0"
MOUNT = "/calrissian"  # the PVC, as in seed 003; Calrissian mounts it into every tool pod
INPUT_MOUNT = "/etc/calrissian/input"  # the job-order ConfigMap: the transformed package and job.yml
DASK_CONFIG_MOUNT = "/etc/dask"  # dask-gateway reads its defaults here (gateway.address)

# (apiGroup, resource, verbs): exactly what Calrissian calls (see the module docstring).
CALRISSIAN_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods", ("create", "get", "list", "watch", "delete")),
    ("", "pods/log", ("get",)),
    ("", "configmaps", ("create", "get", "delete")),
)

_UNSAFE = re.compile(r"[^-a-z0-9]+")


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from ``parts`` (lower case, ``-`` only, at most 63 characters).

    >>> k8s_name("cloudless-mosaic", "20250101T120000.123Z")
    'cloudless-mosaic-20250101t120000-123z'
    """
    name = _UNSAFE.sub("-", "-".join(parts).lower()).strip("-")
    return name[:limit].rstrip("-") or "eopack"


@dataclass(frozen=True)
class JobSpec:
    """Everything the manifests depend on; the runner fills it from the package and options."""

    app: str
    run_id: str
    namespace: str
    args: Sequence[str]  # calrissian's arguments (without the `calrissian` command)
    package_cwl: str  # the transformed package (DaskGatewayRequirement under requirements)
    job_yaml: str
    dask_gateway_url: str | None = None
    image: str = DEFAULT_IMAGE
    storage: str = "10Gi"
    storage_class: str | None = None
    service_account: str = "calrissian"
    tool_service_account: str = "calrissian-tools"
    # Calrissian itself only schedules pods and copies outputs: small, bounded.
    requests: Mapping[str, str] = field(default_factory=lambda: {"cpu": "250m", "memory": "512Mi"})
    limits: Mapping[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    ttl_seconds: int = 3600
    backoff_limit: int = 0  # a failed workflow is not retried blindly; the operator re-runs it
    run_as_user: int = 1000

    @property
    def name(self) -> str:
        return k8s_name(self.app, self.run_id, limit=52)  # room for suffixes such as -job-order

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "calrissian",
            "app.kubernetes.io/managed-by": "eopack",
            "eopack/app": k8s_name(self.app),
            "eopack/run": self.name,
        }


def _meta(spec: JobSpec, name: str, namespaced: bool = True, run: bool = True) -> dict[str, Any]:
    labels = spec.labels if run else {k: v for k, v in spec.labels.items() if k != "eopack/run"}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def rbac(spec: JobSpec) -> list[dict[str, Any]]:
    """ServiceAccounts, Role and RoleBinding: shared by every run in the namespace."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(spec, spec.service_account, run=False),
        "rules": [
            {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
            for group, resource, verbs in CALRISSIAN_RULES
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(spec, spec.service_account, run=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": spec.service_account},
        "subjects": [{"kind": "ServiceAccount", "name": spec.service_account, "namespace": spec.namespace}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(spec, spec.service_account, run=False),
        },
        {
            # The tool pods' identity: no Role, no token; a tool has no business with the API.
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(spec, spec.tool_service_account, run=False),
            "automountServiceAccountToken": False,
        },
        role,
        binding,
    ]


def volume_claim(spec: JobSpec) -> dict[str, Any]:
    """ReadWriteMany: Calrissian's tool pods mount the same claim, possibly on other nodes."""
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(spec, f"{spec.name}-pvc"),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": spec.storage}}},
    }
    if spec.storage_class:
        pvc["spec"]["storageClassName"] = spec.storage_class
    return pvc


def config_maps(spec: JobSpec) -> list[dict[str, Any]]:
    """The job order (package + job.yml) and, with a gateway, dask-gateway's ``/etc/dask`` defaults."""
    maps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(spec, f"{spec.name}-job-order"),
            "data": {f"{spec.app}.cwl": spec.package_cwl, "job.yml": spec.job_yaml},
        }
    ]
    if spec.dask_gateway_url:
        gateway = {"gateway": {"address": spec.dask_gateway_url}}
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(spec, f"{spec.name}-dask-gateway"),
                # JSON is YAML: no YAML emitter needed for a one-line document.
                "data": {"gateway.yaml": json.dumps(gateway) + "\n"},
            }
        )
    return maps


def job(spec: JobSpec) -> dict[str, Any]:
    """The Job: calrissian as non-root, bounded, not retried, cleaned up after ``ttl_seconds``."""
    mounts: list[dict[str, Any]] = [
        {"name": "calrissian-volume", "mountPath": MOUNT},
        {"name": "job-order", "mountPath": INPUT_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "calrissian-volume", "persistentVolumeClaim": {"claimName": f"{spec.name}-pvc"}},
        {"name": "job-order", "configMap": {"name": f"{spec.name}-job-order"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if spec.dask_gateway_url:
        mounts.append({"name": "dask-gateway", "mountPath": DASK_CONFIG_MOUNT, "readOnly": True})
        volumes.append({"name": "dask-gateway", "configMap": {"name": f"{spec.name}-dask-gateway"}})
    container = {
        "name": "calrissian",
        "image": spec.image,
        "command": ["calrissian"],
        "args": list(spec.args),
        "env": [
            # Calrissian finds its own pod by this name to give the tool pods the same PVC mounts.
            {"name": "CALRISSIAN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "CALRISSIAN_DELETE_PODS", "value": "true"},
            # It reads ~/.calrissian/default.json; HOME must be writable with a read-only root.
            {"name": "HOME", "value": "/tmp"},  # noqa: S108 - the emptyDir above
        ],
        "resources": {"requests": dict(spec.requests), "limits": dict(spec.limits)},
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(spec, spec.name),
        "spec": {
            "ttlSecondsAfterFinished": spec.ttl_seconds,
            "backoffLimit": spec.backoff_limit,
            "template": {
                "metadata": {"labels": spec.labels},
                "spec": {
                    "serviceAccountName": spec.service_account,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": spec.run_as_user,
                        "runAsGroup": spec.run_as_user,
                        "fsGroup": spec.run_as_user,  # the PVC is writable by that group
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def manifests(spec: JobSpec, with_namespace: bool = True) -> list[dict[str, Any]]:
    """All objects in apply order: Namespace, RBAC, PVC, ConfigMaps, Job."""
    objects: list[dict[str, Any]] = []
    if with_namespace:
        objects.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(spec, spec.namespace, False, False)}
        )
    return [*objects, *rbac(spec), volume_claim(spec), *config_maps(spec), job(spec)]


def validate_manifests(objects: Sequence[Mapping[str, Any]], version: str | None = None) -> list[str]:
    """Problems found by ``kubernetes-validate`` (strict, offline schemas); empty when all are valid.

    ``version`` defaults to the newest Kubernetes the installed ``kubernetes-validate`` ships.
    """
    import kubernetes_validate
    from kubernetes_validate import utils

    version = version or utils.latest_version()
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            path = ".".join(str(p) for p in err.path)
            problems.append(f"{where}: {path or '(root)'}: {err.message}")
    return problems
