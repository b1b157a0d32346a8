"""Where the provider keeps what every try, worker and machine of a deployment must share: a folder in object
storage named by a ``[genmedia]`` option, or one under ``$AIRFLOW_HOME`` where every task runs on one machine."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import ObjectStoragePath

from airflow_provider_genmedia.exceptions import GenMediaValidationError

#: Executors whose workers all run on the scheduler's machine, where a folder on local disk is shared by every try.
LOCAL_EXECUTORS = frozenset({"LocalExecutor"})


def shared_folder(option: str, conn_option: str, default_name: str, purpose: str) -> ObjectStoragePath:
    """The folder of ``[genmedia] <option>`` (with the connection ``<conn_option>``); unset, ``$AIRFLOW_HOME/
    genmedia/<default_name>``, which only executors that run every task on one machine may use: any other refuses,
    naming the option and what it is for (``purpose``), before anything is sent."""
    configured = conf.get("genmedia", option, fallback=None)
    conn_id = conf.get("genmedia", conn_option, fallback=None)
    if configured:
        return ObjectStoragePath(configured, conn_id=conn_id or None)
    executors = {name.strip().split(".")[-1] for name in conf.get("core", "executor", fallback="").split(",")}
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    default = f"file://{home}/genmedia/{default_name}"
    if not executors <= LOCAL_EXECUTORS | {""}:
        variable = f"AIRFLOW__GENMEDIA__{option.upper()}"
        raise GenMediaValidationError(
            f"[genmedia] {option}",
            f"{purpose}; with {', '.join(sorted(executors))} another task may run on another machine, which cannot "
            f"read {default}. Set {variable} to storage every worker reaches (e.g. s3://bucket/genmedia/"
            f"{default_name}, with AIRFLOW__GENMEDIA__{conn_option.upper()}); nothing was sent",
        )
    return ObjectStoragePath(default)
