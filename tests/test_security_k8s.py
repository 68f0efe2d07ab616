"""Issue 21 finding 12: every pod eopack writes for Kubernetes meets Pod Security "restricted".

No cluster runs here, so the rules of the profile are checked offline by ``restricted_violations``
(which is itself shown to reject the pods the audit found), and the objects are validated against
the Kubernetes OpenAPI schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from eopack.commands import cli
from eopack.k8s import (
    HELPER_SELECTOR,
    JobSpec,
    helper_pod,
    pod_spec_of,
    restricted_violations,
    validate_manifests,
)

APP = "cloudless-mosaic"


def _dry_run(out: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["run", APP, "--runner", "calrissian", "--dry-run", "--outdir", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = (out / ".eopack" / "manifests.yaml").read_text()
    return [d for d in YAML(typ="safe").load_all(text) if d]


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _dry_run(tmp_path_factory.mktemp("k8s") / "run")


def _spec(objects: list[dict[str, Any]]) -> JobSpec:
    job = next(o for o in objects if o["kind"] == "Job")
    name = job["metadata"]["name"]
    token = name.rsplit("-", 1)[1]
    return JobSpec(APP, "run", job["metadata"]["namespace"], [], "", "", token=token)


def test_every_pod_meets_the_restricted_profile(objects: list[dict[str, Any]]) -> None:
    spec = _spec(objects)
    pods = [o for o in objects if pod_spec_of(o) is not None]
    pods += [helper_pod(spec, "stage-in"), helper_pod(spec, "fetch")]
    assert {o["kind"] for o in pods} == {"Job", "Pod"}
    for obj in pods:
        pod = pod_spec_of(obj)
        assert pod is not None
        assert restricted_violations(pod) == [], obj["metadata"]["name"]
    assert validate_manifests(pods) == []


def test_the_helper_pod_the_audit_found_is_rejected() -> None:
    """The helper pod as it was (no seccomp, no container securityContext, no resources)."""
    old = {
        "serviceAccountName": "calrissian-tools",
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
        "containers": [{"name": "files", "image": "calrissian:0.19.0", "command": ["sleep", "3600"]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "x-pvc"}}],
    }
    problems = restricted_violations(old)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("seccomp" in p for p in problems)
    assert any("capabilities" in p for p in problems)
    assert any("resource limits" in p for p in problems)
    root = {**old, "hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    assert any("hostNetwork" in p for p in restricted_violations(root))
    assert any("hostPath" in p for p in restricted_violations(root))


def test_the_namespace_enforces_restricted(objects: list[dict[str, Any]]) -> None:
    ns = next(o for o in objects if o["kind"] == "Namespace")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


def test_helper_pods_end_by_themselves_and_are_found_for_cleanup(objects: list[dict[str, Any]]) -> None:
    pod = helper_pod(_spec(objects), "fetch")
    assert 0 < pod["spec"]["activeDeadlineSeconds"] <= 3600
    key, value = HELPER_SELECTOR.split("=")
    assert pod["metadata"]["labels"][key] == value
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_two_runs_with_the_same_outdir_basename_get_distinct_names(tmp_path: Path) -> None:
    first = _dry_run(tmp_path / "a" / "run")
    second = _dry_run(tmp_path / "b" / "run")

    def names(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        per_run = ("Job", "PersistentVolumeClaim", "ConfigMap")
        return {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in per_run}

    assert names(first) and not names(first) & names(second)
    job = next(o for o in first if o["kind"] == "Job")
    claim = job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in names(first)
    assert len(job["metadata"]["name"]) <= 52
