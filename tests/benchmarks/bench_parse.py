"""Benchmark: what parsing each example DAG costs, next to a twin DAG file of the same tasks as ``EmptyOperator``.

Run: ``.venv/bin/python tests/benchmarks/bench_parse.py [--provider-src CHECKOUT] [--rounds 15]`` (not collected by
pytest; about a minute). Each parse runs in a fresh interpreter that has already imported what a dag-processor has
loaded before it parses a file (``airflow.dag_processing.processor``, ``airflow.sdk``, pendulum, the standard
provider's ``EmptyOperator``), as the dag-processor forks its parsing processes from one that has. The twin imports
what the DAG file imports but the provider, so the difference is the provider's own cost. The figure is the CPU
time (user+system) of importing the DAG file and building its DAGs, median of ``--rounds``. ``--provider-src`` parses
with the provider of another checkout (a git worktree of an earlier commit), for the *before* column.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_dags"
PRELOADED = (
    "import airflow.dag_processing.processor, airflow.sdk, pendulum;"
    " from airflow.providers.standard.operators.empty import EmptyOperator"
)
#: Imports the DAG file as a dag-processor does (a module of its own) and prints the CPU seconds it took.
TIMED = PRELOADED + textwrap.dedent("""
    import importlib.util, sys, time
    started = time.process_time()
    spec = importlib.util.spec_from_file_location("parsed_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(time.process_time() - started)
""")
#: Prints each DAG of a file as ``{dag_id: {task_id: [upstream task ids]}}``, from which its twin is written.
SHAPE = PRELOADED + textwrap.dedent("""
    import importlib.util, json, sys
    from airflow.sdk import DAG
    spec = importlib.util.spec_from_file_location("parsed_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [value for value in vars(module).values() if isinstance(value, DAG)]
    print(json.dumps({dag.dag_id: {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} for dag in dags}))
""")


def run(code: str, path: Path, env: dict[str, str]) -> str:
    """The last line ``code`` printed for ``path``, in a fresh interpreter run from the DAG's folder."""
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, cwd=path.parent, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def twin(path: Path, shape: dict[str, dict[str, list[str]]]) -> str:
    """A DAG file of the same DAGs and tasks, each an ``EmptyOperator`` with the same upstream tasks, importing what
    ``path`` imports but the provider (Airflow's own ``@task`` or timetables cost both files the same)."""
    imports = [
        ast.unparse(node)
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and not any(
            name.startswith("airflow_provider_genmedia")
            for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        )
    ]
    lines = [
        *imports,
        "import pendulum",
        "from airflow.sdk import DAG",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "",
    ]
    for dag_id, tasks in shape.items():
        lines.append(f'with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):')
        lines.append(f"    tasks = {{task_id: EmptyOperator(task_id=task_id) for task_id in {sorted(tasks)!r}}}")
        lines.append(f"    for task_id, upstream in {tasks!r}.items():")
        lines.append("        for other in upstream:")
        lines.append("            tasks[other] >> tasks[task_id]")
    return "\n".join(lines) + "\n"


def cpu(path: Path, env: dict[str, str], rounds: int) -> float:
    """Median CPU seconds of parsing ``path`` in a fresh interpreter."""
    return statistics.median(float(run(TIMED, path, env)) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--provider-src", type=Path, help="parse with the provider of this checkout")
    arguments = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if arguments.provider_src:
        env["PYTHONPATH"] = str(arguments.provider_src)
    # Bytecode compiled once, as pip compiles an installed wheel: what is timed is importing, not compiling.
    package = (arguments.provider_src or REPO) / "airflow_provider_genmedia"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=False)
    source = arguments.provider_src or "this checkout"
    print(f"CPU seconds to parse, median of {arguments.rounds} fresh interpreters; provider: {source}\n")
    print("| DAG file | tasks | DAG file s | EmptyOperator twin s | ratio |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for path in sorted(EXAMPLES.glob("*.py")):
            shape = json.loads(run(SHAPE, path, env))
            twin_path = Path(folder) / f"twin_{path.name}"
            twin_path.write_text(twin(path, shape))
            dag, empty = cpu(path, env, arguments.rounds), cpu(twin_path, env, arguments.rounds)
            tasks = sum(len(tasks) for tasks in shape.values())
            rows.append((dag, empty))
            print(f"| {path.name} | {tasks} | {dag:.3f} | {empty:.3f} | {dag / empty:.2f} |", flush=True)
    total, floor = sum(dag for dag, _ in rows), sum(empty for _, empty in rows)
    print(f"| all | | {total:.3f} | {floor:.3f} | {total / floor:.2f} |")


if __name__ == "__main__":
    main()
