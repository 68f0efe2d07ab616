"""Configuration of the local Dask Gateway (copied as ``dask_gateway_config.py``; edits are overwritten).

``dask-gateway-server -f`` runs this file with ``get_config`` and ``__file__`` in its namespace. The
values that change per machine or state dir (ports, password, paths, size limits) are read from
``gateway.json`` and ``dask_gateway_settings.json``, written beside it by ``eopack gateway up``.
Importing the module does nothing; only the server's run applies ``configure``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SETTINGS_FILE = "dask_gateway_settings.json"


def configure(c: Any, here: Path) -> None:
    """Fill the traitlets config ``c`` from the JSON files in ``here`` (the state dir)."""
    from aiohttp import web
    from dask_gateway_server.backends.local import UnsafeLocalBackend
    from dask_gateway_server.options import Float, Integer, Options, String
    from dask_gateway_server.routes import api_handler, default_routes

    settings = json.loads((here / SETTINGS_FILE).read_text())
    state = json.loads(Path(settings["state_file"]).read_text())
    logs = Path(settings["cluster_logs"])
    dask = settings["dask"]
    host = settings["host"]

    def keep_logs(workdir: Path, found: Path) -> None:
        """Copy a cluster's logs to ``logs/clusters/<name>/`` before its working dir is removed."""
        if found.is_dir():
            keep = logs / workdir.name
            keep.mkdir(parents=True, exist_ok=True)
            for log in found.glob("*.log"):
                shutil.copy2(log, keep / log.name)

    class EopackLocalBackend(UnsafeLocalBackend):  # type: ignore[misc]
        """The local backend, keeping each cluster's logs under the state dir after it stops."""

        def cleanup_working_directory(self, workdir: str) -> None:
            keep_logs(Path(workdir), Path(workdir) / "logs")
            super().cleanup_working_directory(workdir)

    @default_routes.get(settings["route"])  # type: ignore[misc]
    @api_handler(user_authenticated=True)  # type: ignore[misc]
    async def all_clusters(request: Any) -> Any:
        """Every user's active clusters with their size (the stock API lists only the caller's)."""
        backend = request.app["backend"]
        found = []
        for cluster in backend.db.active_clusters():
            config = cluster.config

            def get(key: str, default: Any = None, config: Any = config) -> Any:
                return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)

            found.append(
                {
                    "name": cluster.name,
                    "owner": cluster.username,
                    "status": cluster.model_status.name,
                    "worker_cores": int(get("worker_cores", 1)),
                    "worker_memory": int(get("worker_memory", 0)),
                    "image": (get("environment", {}) or {}).get("DASK_GATEWAY_IMAGE", ""),
                    "workers": sum(1 for w in cluster.workers.values() if w.is_active()),
                    "start_time": cluster.start_time,
                }
            )
        return web.json_response(found)

    def options_handler(options: Any) -> dict[str, Any]:
        """Map the form to the cluster config; memory is asked in GiB (what dask-gateway clients send)."""
        return {
            "worker_cores": options.worker_cores,
            "worker_memory": int(options.worker_memory * 2**30),
            "environment": {"EOPACK_GATEWAY_LOGS": str(logs), "DASK_GATEWAY_IMAGE": options.image},
        }

    max_cores = settings["max_cores"]
    c.DaskGateway.address = f"{host}:{state['api_port']}"
    c.Proxy.address = f"{host}:{state['port']}"
    c.Proxy.tcp_address = f"{host}:{state['proxy_port']}"
    if settings.get("backend", "local") == "slurm":
        # Schedulers and workers are Slurm jobs (the ClusterConfig values below apply to them too).
        c.DaskGateway.backend_class = slurm_backend(settings, keep_logs)
    else:
        c.DaskGateway.backend_class = EopackLocalBackend
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
    c.SimpleAuthenticator.password = state["password"]
    c.LocalBackend.clusters_directory = settings["clusters"]
    c.ClusterConfig.scheduler_cmd = [dask, "scheduler", "--preload", settings["preload"]]
    c.ClusterConfig.worker_cmd = [dask, "worker"]
    c.ClusterConfig.idle_timeout = float(state["idle_timeout"])
    c.ClusterConfig.environment = {"EOPACK_GATEWAY_LOGS": str(logs)}
    # Local workers are processes on this machine: a client (or an input-driven requirement) must not
    # be able to fork thousands. The cap allows some overcommit (tests run 4 workers on 2 cores);
    # the scheduler's own core counts against cluster_max_cores.
    c.ClusterConfig.cluster_max_workers = int(settings["cluster_max_workers"])
    c.ClusterConfig.cluster_max_cores = float(settings["cluster_max_workers"] + 1)
    c.Backend.cluster_options = Options(
        Integer("worker_cores", 1, min=1, max=max_cores, label="Worker cores"),
        Integer("worker_cores_limit", 1, min=1, max=max_cores, label="Worker cores limit"),
        Float("worker_memory", 2, min=0.25, max=settings["max_memory_gib"], label="Worker memory (GiB)"),
        String("image", "", label="Image (recorded; local workers run the gateway's environment)"),
        handler=options_handler,
    )


def slurm_backend(settings: dict[str, Any], keep_logs: Any) -> type:
    """dask-gateway's SlurmBackend, run as the service user (no ``sudo``), on eopack's Slurm.

    Upstream's ``JobQueueBackend.do_as_user`` always runs ``sudo -nHu <gateway user>
    dask-gateway-jobqueue-launcher`` (jobs belong to the Unix user the gateway authenticated). Here
    the gateway user is a SimpleAuthenticator name, not a Unix account, and the service user (root
    on this machine) owns every job: the launcher runs directly, with ``SLURM_CONF`` so ``sbatch``,
    ``scancel`` and ``squeue`` find the cluster. Staging dirs (TLS files, job logs) are
    ``clusters/<name>/`` of the state dir, which the compute nodes share.
    """
    import asyncio
    import json as _json
    import os

    from dask_gateway_server.backends.jobqueue.slurm import SlurmBackend

    slurm_env = dict(settings.get("slurm_env", {}))
    launcher = settings["launcher"]
    clusters = settings["clusters"]

    class EopackSlurmBackend(SlurmBackend):  # type: ignore[misc]
        """SlurmBackend without sudo; keeps every cluster's job logs after it stops."""

        def get_staging_directory(self, cluster: Any) -> str:
            return os.path.join(clusters, cluster.name)

        def get_status_cmd_env(self, job_ids: list[str]) -> tuple[list[str], dict[str, str]]:
            cmd, env = super().get_status_cmd_env(job_ids)
            return cmd, {**env, **slurm_env}

        async def do_stop_cluster(self, cluster: Any) -> None:
            staging = cluster.state.get("staging_dir")
            if staging:
                keep_logs(Path(staging), Path(staging))
            await super().do_stop_cluster(cluster)

        async def do_as_user(self, user: str, action: str, **kwargs: Any) -> tuple[int, str, str]:
            kwargs["action"] = action
            if kwargs.get("env") is not None:
                kwargs["env"] = {**kwargs["env"], **slurm_env}
            proc = await asyncio.create_subprocess_exec(
                launcher,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **slurm_env},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate(_json.dumps(kwargs).encode())
            stdout, stderr = out.decode("utf8", "replace"), err.decode("utf8", "replace")
            if proc.returncode != 0:
                raise RuntimeError(f"{launcher} exited {proc.returncode}: {stdout} {stderr}")
            result = _json.loads(stdout)
            if not result["ok"]:
                raise RuntimeError(result["error"])
            return int(result["returncode"]), str(result["stdout"]), str(result["stderr"])

    return EopackSlurmBackend


if "get_config" in globals():  # run by dask-gateway-server -f, not imported
    configure(globals()["get_config"](), Path(globals()["__file__"]).parent)
