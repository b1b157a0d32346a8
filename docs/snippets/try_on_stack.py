"""The docs' example of trying a DAG on a real local Airflow against the emulator (see docs/emulator.md).

Run it with ``.venv/bin/python docs/snippets/try_on_stack.py`` (about a minute): it starts the emulator and an
Airflow deployment on 127.0.0.1, runs the img2img example DAG there, as a user would run a DAG of their own, and
stops every process it started.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def main() -> None:
    """Run the img2img pipeline on a fresh local deployment and check that it paid for one job."""
    # [START howto_emulator_stack]
    from genmedia_stack import Deployment, EmulatorProcess

    root = Path(tempfile.mkdtemp(prefix="my-stack-"))
    dag_id = "genmedia_img2img_pipeline"
    with (
        EmulatorProcess(log=root / "emulator.log") as emulator,
        Deployment(
            root=root,
            dag_sources=[EXAMPLES],
            emulator=emulator,
            # A destination given in the run's conf is templated, so it must fall under [genmedia] destination_roots.
            extra_env={"AIRFLOW__GENMEDIA__DESTINATION_ROOTS": (root / "published").as_uri()},
        ) as airflow,
    ):
        airflow.wait_for_dags(dag_id)
        airflow.unpause(dag_id)
        run_id = airflow.trigger(dag_id, conf={"destination": (root / "published").as_uri()})
        assert airflow.wait_for_run(dag_id, run_id, timeout=300) == "success", airflow.failure_report(dag_id, run_id)
        assert emulator.stats()["submits"]["novita"] == 1  # one paid job for one task
        print(airflow.states(dag_id, run_id))  # {(task_id, map_index): (state, try_number)}
    # [END howto_emulator_stack]


if __name__ == "__main__":
    main()
