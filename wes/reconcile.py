"""Make the WES state agree with reality after the workers stopped (``eopack wes down``/``up``).

Run by ``eopack wes`` with the server venv's Python while no Celery worker runs, so nothing can be
executing a run. The behaviour it implements (wes/README.md, "Restarts"):

- a run QUEUED in the state store whose task message is in Redis stays QUEUED and runs after the
  restart; reserved-but-unstarted messages (Redis ``unacked``) are put back in the queue first;
- a run QUEUED whose message is gone (the broker lost it) becomes SYSTEM_ERROR;
- a run INITIALIZING or RUNNING was interrupted by the stop: it becomes SYSTEM_ERROR, and a line
  saying so is appended to its stderr log (``eopack wes logs``); resubmit it;
- a run CANCELING becomes CANCELED.

Prints one JSON object: ``{"requeued": n, "queued": [...], "failed": [...], "canceled": [...]}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from kombu import Connection
from toil.server.utils import WorkflowStateMachine, connect_to_workflow_state_store

QUEUE = "celery"  # Toil's run_wes task uses Celery's default queue


def queued_task_ids(conn: Connection) -> set[str]:
    """Task ids of the messages waiting in the queue (every priority sub-queue)."""
    client = conn.default_channel.client
    ids = set()
    for key in client.keys(QUEUE + "*"):
        if client.type(key) not in (b"list", "list"):
            continue
        for raw in client.lrange(key, 0, -1):
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            task_id = (message.get("headers") or {}).get("id")
            if task_id:
                ids.add(task_id)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--state-store", required=True)
    parser.add_argument("--broker-file", required=True, type=Path)
    args = parser.parse_args()
    url = args.broker_file.read_text().strip()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    report: dict[str, object] = {"requeued": 0, "queued": [], "failed": [], "canceled": []}
    # visibility_timeout=0: every unacknowledged message counts as expired and is restored now.
    with Connection(url, transport_options={"visibility_timeout": 0}) as conn:
        channel = conn.default_channel
        before = channel.client.zcard(channel.unacked_index_key)
        channel.qos.restore_visible(num=max(before, 1) + 10, interval=1)
        report["requeued"] = int(before) - int(channel.client.zcard(channel.unacked_index_key))
        waiting = queued_task_ids(conn)
    for run_dir in sorted(args.work_dir.glob("run-*")):
        run_id = run_dir.name
        machine = WorkflowStateMachine(connect_to_workflow_state_store(args.state_store, run_id))
        store = connect_to_workflow_state_store(args.state_store, run_id)
        state = machine.get_current_state()
        if state == "QUEUED" and run_id in waiting:
            report["queued"].append(run_id)  # type: ignore[union-attr]
            continue
        if state in ("QUEUED", "INITIALIZING", "RUNNING"):
            why = (
                "its task message was lost by the broker"
                if state == "QUEUED"
                else f"it was {state} when the WES workers stopped"
            )
            store.set("state", "SYSTEM_ERROR")
            store.set("end_time", now)
            with open(os.path.join(run_dir, "stderr"), "a") as log:
                log.write(
                    f"eopack-wes: error: run {run_id} set to SYSTEM_ERROR at {now}: {why}; resubmit it\n"
                )
            report["failed"].append(run_id)  # type: ignore[union-attr]
        elif state == "CANCELING":
            store.set("state", "CANCELED")
            report["canceled"].append(run_id)  # type: ignore[union-attr]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
