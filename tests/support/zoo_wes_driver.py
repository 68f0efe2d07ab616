"""Drive ZOO-Project's WES runner (PyPI zoo-wes-runner) against a WES endpoint, without a ZOO kernel.

Run with the Python of the isolated venv that has zoo-wes-runner (tests/test_wes.py makes it):
``python zoo_wes_driver.py PACKED.cwl JOB.json WORKDIR``, with WES_URL/WES_USER/WES_PASSWORD set
as ZOO's deployment sets them. ``ZooWESRunner.execute`` runs unchanged: its submission (job.cwl
attachment, CWL v1.0, workflow_params), its polling, its final run-log and stderr fetches. What
needs a ZOO-Project kernel is replaced: ``prepare`` (ZOO's stage-in/stage-out wrapping of the CWL
via cwl-wrapper templates that a ZOO deployment configures) returns the package's run copy with
its Workflow renamed ``main`` (what the wrapper produces), and the status callbacks are no-ops.
Prints one JSON line: {"exit": <ZOO service code>, "succeeded": <ZOO's SERVICE_SUCCEEDED>, ...}.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import httpx
import yaml
from zoo_wes_runner import wes_runner
from zoo_wes_runner.wes_runner import ZooWESRunner


class Handler:
    def post_execution_hook(self, log: str, output: dict, usage_report: object, tool_logs: object) -> None:
        self.log, self.output = log, output


def main() -> int:
    cwl_path, job_path, workdir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    doc = yaml.safe_load(cwl_path.read_text())
    app = cwl_path.stem
    for node in doc["$graph"]:
        if node.get("id") in (app, f"#{app}"):
            node["id"] = "main"
    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    runner = ZooWESRunner.__new__(ZooWESRunner)  # ZooCalrissianRunner.__init__ needs a ZOO kernel
    runner.handler = runner.execution_handler = Handler()
    runner.zoo_conf = types.SimpleNamespace(conf={"lenv": {"cwd": str(workdir), "usid": "eopack-test"}})
    runner.monitor_interval = 1
    runner.assert_parameters = lambda mandatory=True: True
    runner.prepare = lambda: types.SimpleNamespace(cwl=doc, params=json.loads(job_path.read_text()))
    runner.update_status = lambda progress, message="": None
    # Exactly what ZooWESRunner.__init__ builds from the environment.
    import os

    runner.basic_auth = httpx.BasicAuth(os.environ.get("WES_USER"), os.environ.get("WES_PASSWORD"))
    runner.httpx = httpx.Client(base_url=os.environ.get("WES_URL"), auth=runner.basic_auth, trust_env=False)
    code = runner.execute()
    print(
        json.dumps(
            {
                "exit": code,
                "succeeded": wes_runner.base.zoo.SERVICE_SUCCEEDED,
                "run_id": runner.zoo_conf.conf["lenv"].get("run_id"),
                "outputs": runner.handler.output,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
