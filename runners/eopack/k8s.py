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

Every pod written here (the Job's and the helper pods that copy files in and out of the PVC) meets the
Pod Security Standard "restricted" profile, and the Namespace enforces it
(``pod-security.kubernetes.io/enforce: restricted``): ``restricted_violations`` states the profile's
rules and the tests run every pod through it. Names carry a per-run token, so two runs whose
``--outdir`` share a basename get distinct Job, PVC and ConfigMap names. Helper pods end by
themselves (``activeDeadlineSeconds``), so a killed client leaves no pod running; the next run
deletes the ended ones (``HELPER_SELECTOR``).
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
    "HELPER_SELECTOR",
    "MOUNT",
    "JobSpec",
    "helper_pod",
    "k8s_name",
    "manifests",
    "pod_spec_of",
    "restricted_violations",
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

# Pod Security "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
} | {"pod-security.kubernetes.io/enforce-version": "latest"}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
HELPER_ROLE = "file-copy"
HELPER_SELECTOR = f"eopack/role={HELPER_ROLE}"
HELPER_DEADLINE = 3600  # seconds a helper pod may live, whatever happens to the client


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
    # Distinguishes runs whose run_id (the --outdir basename) is the same; kept whole in ``name``.
    token: str = ""

    @property
    def name(self) -> str:
        # 52 leaves room for suffixes such as -job-order; the token is never cut off.
        if not self.token:
            return k8s_name(self.app, self.run_id, limit=52)
        token = k8s_name(self.token, limit=12)
        return f"{k8s_name(self.app, self.run_id, limit=51 - len(token))}-{token}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "calrissian",
            "app.kubernetes.io/managed-by": "eopack",
            "eopack/app": k8s_name(self.app),
            "eopack/run": self.name,
        }


def pod_security_context(spec: JobSpec) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": spec.run_as_user,
        "runAsGroup": spec.run_as_user,
        "fsGroup": spec.run_as_user,  # the PVC is writable by that group
        "seccompProfile": {"type": "RuntimeDefault"},
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
        "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
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
                    "securityContext": pod_security_context(spec),
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
        meta = _meta(spec, spec.namespace, False, False)
        meta["labels"] = {**meta["labels"], **POD_SECURITY_LABELS}
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return [*objects, *rbac(spec), volume_claim(spec), *config_maps(spec), job(spec)]


def helper_pod(spec: JobSpec, suffix: str) -> dict[str, Any]:
    """A pod mounting the run's PVC for ``kubectl cp`` in and out (the Job's pod cannot be used).

    It sleeps and is deleted by the client when done; ``activeDeadlineSeconds`` ends it even when the
    client was killed, and the label lets the next run delete the ended ones.
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": k8s_name(spec.name, suffix),
            "namespace": spec.namespace,
            "labels": {**spec.labels, "eopack/role": HELPER_ROLE},
        },
        "spec": {
            "serviceAccountName": spec.tool_service_account,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": HELPER_DEADLINE,
            "securityContext": pod_security_context(spec),
            "containers": [
                {
                    "name": "files",
                    "image": spec.image,
                    "command": ["sleep", str(HELPER_DEADLINE)],
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
                    "volumeMounts": [{"name": "data", "mountPath": MOUNT}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"{spec.name}-pvc"}}],
        },
    }


_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def pod_spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec inside a Pod, Job or CronJob; None for other kinds."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "Job":
        return (spec.get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    return None


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Where a pod spec breaks the Pod Security Standard "restricted" profile (v1.25+ rules).

    Baseline: no host namespaces, privileged containers, added capabilities beyond NET_BIND_SERVICE,
    hostPath volumes, host ports, unsafe sysctls, non-default /proc mounts or custom SELinux users.
    Restricted adds: only the listed volume types, allowPrivilegeEscalation false, runAsNonRoot true
    and no runAsUser 0, seccomp RuntimeDefault or Localhost, and every capability dropped.
    """
    problems: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {vol.get('name')} is of type {sorted(kinds - _RESTRICTED_VOLUMES)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    safe_sysctls = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}  # fmt: skip
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in safe_sysctls:
            problems.append(f"sysctl {sysctl.get('name')} is not in the safe set")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    if not containers:
        problems.append("no containers")
    for c in containers:
        sc, where = c.get("securityContext") or {}, f"container {c.get('name')}"
        if sc.get("privileged"):
            problems.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} does not set allowPrivilegeEscalation: false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{where} does not set runAsNonRoot: true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where} has no RuntimeDefault/Localhost seccomp profile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where} does not drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where} adds capabilities {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where} has procMount {sc['procMount']}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{where} uses a hostPort")
        se_type = (sc.get("seLinuxOptions") or {}).get("type")
        if se_type not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            problems.append(f"{where} has SELinux type {se_type}")
        if not (c.get("resources") or {}).get("limits"):
            # Not in the profile, but an unbounded pod is what a quota'd namespace refuses.
            problems.append(f"{where} has no resource limits")
    return problems


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
