"""Tool-side Dask resolution: units, the scale formula, and that clusters never leak."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from eopack_eo_common.dask_cluster import (
    check_workers_write,
    dask_client,
    gateway_spec_from_env,
    local_limits,
    parse_memory,
    worker_count,
)
from eopack_eo_common.errors import ToolError, ToolInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * 1024**3),
        ("2GB", 2 * 10**9),
        ("512M", 512 * 1024**2),
        ("1.5G", int(1.5 * 1024**3)),
        ("64K", 65536),
        ("3TB", 3 * 10**12),
        ("1024", 1024),
        (" 2G ", 2 * 1024**3),
        ("2g", 2 * 1024**3),
    ],
)
def test_parse_memory_units(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["2Gi", "2 gibibytes", "G", "", "-1G", "1e3M"])
def test_parse_memory_refuses_other_units(text: str) -> None:
    with pytest.raises(ToolInputError, match="K, M, G, T"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("cores", "limit", "mem", "wmem", "expected"),
    [(4, 1, "8G", "2G", 4), (4, 1, "4G", "2G", 2), (8, 2, "64G", "1G", 4), (1, 4, "1G", "4G", 1)],
)
def test_worker_count_is_the_smaller_limit(
    cores: int, limit: int, mem: str, wmem: str, expected: int
) -> None:
    assert worker_count(cores, limit, parse_memory(mem), parse_memory(wmem)) == expected


def test_gateway_spec_from_env_reads_calrissian_names() -> None:
    spec = gateway_spec_from_env(
        {
            "DASK_GATEWAY_URL": "http://127.0.0.1:8000",
            "DASK_GATEWAY_WORKER_CORES": "2",
            "DASK_GATEWAY_WORKER_CORES_LIMIT": "2",
            "DASK_GATEWAY_WORKER_MEMORY": "3G",
            "DASK_GATEWAY_CLUSTER_MAX_CORES": "8",
            "DASK_GATEWAY_CLUSTER_MAX_RAM": "9G",
            "DASK_GATEWAY_IMAGE": "eopack/ndvi:1.0.0",
        }
    )
    assert (spec.worker_cores, spec.worker_memory, spec.workers, spec.image) == (
        2,
        3 * 1024**3,
        3,
        "eopack/ndvi:1.0.0",
    )


def test_local_limits_are_positive() -> None:
    cores, memory = local_limits()
    assert cores >= 1 and (memory is None or memory > 0)


def test_local_cluster_computes_and_closes() -> None:
    import dask.array as da

    with dask_client(env={}) as client:
        total = da.ones((100, 100), chunks=50).sum().compute()
        cluster = client.cluster
    assert total == 10_000
    assert cluster.status.name == "closed"


class RecordingGateway:
    """Stands in for dask_gateway.Gateway, recording what the helper asks of it.

    The real gateway is exercised by the `gateway` integration tests; this checks our ordering
    and cleanup logic, including paths that are hard to provoke on a real server.
    """

    def __init__(self, calls: list[str], fail_on: str | None = None) -> None:
        self.calls, self.fail_on = calls, fail_on

    def cluster_options(self) -> dict[str, Any]:
        return {"worker_cores": 1, "worker_memory": 1.0}

    def new_cluster(self, options: dict[str, Any]) -> RecordingGateway:
        self.calls.append(f"new {options['worker_cores']} {options['worker_memory']:.1f}")
        self.name = "c1"
        return self

    def connect(self, name: str) -> RecordingGateway:
        self.calls.append(f"connect {name}")
        self.name = name
        return self

    def scale(self, n: int) -> None:
        self.calls.append(f"scale {n}")
        if self.fail_on == "scale":
            raise RuntimeError("scale failed")

    def get_client(self) -> Any:
        outer = self

        class _Client:
            def close(self) -> None:
                outer.calls.append("client.close")

        return _Client()

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def close(self) -> None:
        self.calls.append("gateway.close")


GATEWAY_ENV = {
    "DASK_GATEWAY_URL": "http://gw",
    "DASK_GATEWAY_WORKER_CORES": "1",
    "DASK_GATEWAY_WORKER_CORES_LIMIT": "1",
    "DASK_GATEWAY_WORKER_MEMORY": "2G",
    "DASK_GATEWAY_CLUSTER_MAX_CORES": "4",
    "DASK_GATEWAY_CLUSTER_MAX_RAM": "6G",
}


def test_gateway_cluster_scaled_by_formula_and_shut_down() -> None:
    calls: list[str] = []
    with dask_client(GATEWAY_ENV, lambda url, env: RecordingGateway(calls)):
        calls.append("work")
    assert calls == ["new 1 2.0", "scale 3", "work", "client.close", "shutdown", "gateway.close"]


def test_gateway_cluster_shut_down_when_computation_fails() -> None:
    calls: list[str] = []
    with pytest.raises(ZeroDivisionError), dask_client(GATEWAY_ENV, lambda url, env: RecordingGateway(calls)):
        1 / 0
    assert calls[-2:] == ["shutdown", "gateway.close"]


def test_gateway_cluster_shut_down_when_scaling_fails() -> None:
    calls: list[str] = []
    with (
        pytest.raises(RuntimeError),
        dask_client(GATEWAY_ENV, lambda url, env: RecordingGateway(calls, "scale")),
    ):
        pass
    assert calls[-2:] == ["shutdown", "gateway.close"]


def test_existing_cluster_is_connected_not_shut_down() -> None:
    calls: list[str] = []
    with dask_client(
        {"DASK_CLUSTER": "ns.abc", "DASK_GATEWAY_URL": "http://gw"}, lambda url, env: RecordingGateway(calls)
    ):
        pass
    assert calls == ["connect ns.abc", "client.close", "gateway.close"]


@pytest.mark.parametrize("on_gateway", [GATEWAY_ENV, {"DASK_CLUSTER": "ns.abc"}], ids=["new", "existing"])
def test_workers_writing_a_containers_folder_are_refused(tmp_path, on_gateway: dict[str, str]) -> None:
    """geozarr's workers write its store: from a container a gateway's workers cannot."""
    told = {"EOPACK_CONTAINER_PATHS": "1"}
    check_workers_write(tmp_path / "out", on_gateway)  # not in a container: the workers see its paths
    check_workers_write(tmp_path / "out", told)  # a local cluster runs in the container itself
    with pytest.raises(
        ToolInputError,
        match=r"the Dask workers write the output, into /.*/out in this container.*--no-container",
    ) as err:
        check_workers_write(tmp_path / "out", on_gateway | told)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_unreachable_gateway_is_an_error_not_a_local_fallback() -> None:
    env = {**GATEWAY_ENV, "DASK_GATEWAY_URL": "http://127.0.0.1:1"}
    with (
        pytest.raises(ToolError, match="cannot create a Dask cluster on the gateway at http://127.0.0.1:1"),
        dask_client(env),
    ):
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=lambda s: s.name)
def test_sigterm_shuts_the_gateway_cluster_down(tmp_path, sig: signal.Signals) -> None:
    """SIGTERM, SIGHUP (ssh gone) or SIGQUIT mid-run still reach the cleanup, in a real separate process.

    Issue 21 #11: SIGHUP and SIGQUIT used to kill the tool with the cluster left on the gateway.
    """
    marker = tmp_path / "calls.txt"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_dask_cluster import RecordingGateway, GATEWAY_ENV
        from eopack_eo_common.dask_cluster import dask_client
        calls = []
        try:
            with dask_client(GATEWAY_ENV, lambda url, env: RecordingGateway(calls)):
                print("ready", flush=True)
                time.sleep(60)
        finally:
            open({str(marker)!r}, "w").write(",".join(calls))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 128 + sig
    assert marker.read_text().endswith("shutdown,gateway.close")


def test_gateway_password_is_read_from_a_file(tmp_path) -> None:
    """In a container the runner passes DASK_GATEWAY_PASSWORD_FILE, never the password itself (issue 21 #2)."""
    from eopack_eo_common.dask_cluster import _close_gateway, _gateway

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    gateway = _gateway("http://127.0.0.1:9", {"DASK_GATEWAY_PASSWORD_FILE": str(secret)})
    try:
        assert gateway.auth.password == "s3cret" and gateway.auth.username == "eopack"
    finally:
        _close_gateway(gateway)


def test_a_capped_scale_waits_for_the_workers_the_gateway_grants() -> None:
    """dask-gateway answers a request above cluster_max_workers with a GatewayWarning, not an error."""
    import warnings

    from eopack_eo_common.dask_cluster import _scale

    class Capped:
        def scale(self, n: int) -> None:
            warnings.warn(UserWarning(f"Scale request of {n} workers would exceed resource limit of 1 workers. "
                                      "Scaling to 1 instead."), stacklevel=1)  # fmt: skip

    class Plain:
        def scale(self, n: int) -> None:
            pass

    assert _scale(Capped(), 4) == 1
    assert _scale(Plain(), 4) == 4
