"""Job, task and model records as FATE-Flow's `to_dict()` shapes them (pure).

`job/query` rows carry every `f_` key of FATE's Job table (the CLI deletes `f_dsl` and
`f_runtime_conf`, so both are always there); times are ms epochs, dates
`%Y-%m-%d %H:%M:%S`. One row per (role, party) of the job, as the initiator stores them.
fedstats adds `f_reason`: why a job failed, was canceled or timed out.
"""

from __future__ import annotations

import time
from typing import Any

FATE_VERSION = "1.11.3"


def _ms(t: float | None) -> int | None:
    return None if t is None else round(t * 1000)


def _date(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _elapsed(start: float | None, end: float | None) -> int | None:
    if start is None:
        return None
    return round(((end or time.time()) - start) * 1000)


def job_rows(job: dict[str, Any], role: str | None = None,
             party_id: str | None = None) -> list[dict[str, Any]]:
    out = []
    for r, ids in job["roles"].items():
        for pid in ids:
            if role is not None and r != role:
                continue
            if party_id is not None and str(pid) != str(party_id):
                continue
            out.append(job_row(job, r, str(pid)))
    return out


def job_row(job: dict[str, Any], role: str, party_id: str) -> dict[str, Any]:
    initiator = role == job["initiator_role"] and party_id == str(job["initiator_party"])
    return {
        "f_apply_resource_time": _ms(job["started"]), "f_cancel_signal": job["status"] == "canceled",
        "f_cancel_time": _ms(job["ended"]) if job["status"] == "canceled" else None,
        "f_cores": 0, "f_create_date": _date(job["created"]), "f_create_time": _ms(job["created"]),
        "f_description": job["description"], "f_dsl": job["dsl"],
        "f_elapsed": _elapsed(job["started"], job["ended"]),
        "f_end_date": _date(job["ended"]), "f_end_scheduling_updates": 1 if job["ended"] else 0,
        "f_end_time": _ms(job["ended"]), "f_engine_name": "FEDSTATS", "f_engine_type": "computing",
        "f_inheritance_info": {}, "f_inheritance_status": "pass",
        "f_initiator_party_id": str(job["initiator_party"]), "f_initiator_role": job["initiator_role"],
        "f_is_initiator": initiator, "f_job_id": job["job_id"], "f_memory": 0, "f_name": "",
        "f_party_id": party_id, "f_progress": job["progress"], "f_ready_signal": False,
        "f_ready_time": None, "f_reason": job["reason"], "f_remaining_cores": 0,
        "f_remaining_memory": 0, "f_rerun_signal": False, "f_resource_in_use": False,
        "f_return_resource_time": _ms(job["ended"]), "f_role": role, "f_roles": job["roles"],
        "f_runtime_conf": job["conf"], "f_runtime_conf_on_party": job["conf"],
        "f_start_date": _date(job["started"]), "f_start_time": _ms(job["started"]),
        "f_status": job["status"], "f_status_code": None, "f_tag": job["tag"],
        "f_train_runtime_conf": {}, "f_update_date": _date(job["updated"]),
        "f_update_time": _ms(job["updated"]), "f_user": {}, "f_user_id": "",
    }


def list_row(job: dict[str, Any], role: str, party_id: str) -> dict[str, Any]:
    row = {k[2:]: v for k, v in job_row(job, role, party_id).items()}
    row["partners"] = sorted({int(p) for r, ids in job["roles"].items() for p in ids
                              if not (r == role and str(p) == party_id)})
    return row


def task_row(task: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    return {
        "f_job_id": task["job_id"], "f_component_name": task["component"],
        "f_component_module": task["module"], "f_task_id": f"{task['job_id']}_{task['component']}",
        "f_task_version": task["version"], "f_initiator_role": job["initiator_role"],
        "f_initiator_party_id": str(job["initiator_party"]), "f_federated_mode": "MULTIPLE",
        "f_federated_status_collect_type": "PUSH", "f_status": task["status"],
        "f_status_code": None, "f_auto_retries": 0, "f_auto_retry_delay": 0,
        "f_role": task["role"], "f_party_id": task["party_id"], "f_run_on_this_party": True,
        "f_worker_id": None, "f_cmd": [], "f_run_ip": None, "f_run_port": None, "f_run_pid": None,
        "f_party_status": task["status"],
        "f_provider_info": {"name": "fedstats", "version": "0.1.0", "path": "", "class_path": {},
                            "env": {}},
        "f_component_parameters": {"ComponentParam": task["params"], "module": task["module"],
                                   "role": task["role"],
                                   "local": {"role": task["role"], "party_id": task["party_id"]}},
        "f_engine_conf": {}, "f_kill_status": task["status"] == "canceled",
        "f_error_report": task["error"] or "", "f_is_deepspeed": False, "f_deepspeed_id": "",
        "f_start_time": _ms(task["started"]), "f_start_date": _date(task["started"]),
        "f_end_time": _ms(task["ended"]), "f_end_date": _date(task["ended"]),
        "f_elapsed": _elapsed(task["started"], task["ended"]),
        "f_create_time": _ms(task["created"]), "f_create_date": _date(task["created"]),
        "f_update_time": _ms(task["updated"]), "f_update_date": _date(task["updated"]),
    }


def model_row(m: dict[str, Any], initiator: tuple[str, str]) -> dict[str, Any]:
    return {
        "f_role": m["role"], "f_party_id": m["party_id"], "f_roles": m["train_conf"].get("role"),
        "f_job_id": m["job_id"], "f_model_id": m["model_id"], "f_model_version": m["model_version"],
        "f_size": 0, "f_initiator_role": initiator[0], "f_initiator_party_id": initiator[1],
        "f_runtime_conf": m["train_conf"], "f_train_dsl": m["train_dsl"],
        "f_train_runtime_conf": m["train_conf"], "f_runtime_conf_on_party": m["train_conf"],
        "f_inference_dsl": m["inference_dsl"], "f_fate_version": FATE_VERSION,
        "f_parent": m["parent"] is None, "f_parent_info": {"parent_version": m["parent"]} if m["parent"] else {},
        "f_loaded_times": m["loaded_times"], "f_imported": 0, "f_archive_sha256": None,
        "f_archive_from_ip": None, "f_create_time": _ms(m["created"]),
        "f_create_date": _date(m["created"]), "f_description": "",
        "f_services": m["services"],
    }
