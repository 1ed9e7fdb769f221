"""The sweep of `fastmamba explore`: the space's points run as Ray Tune trials, the results written, resumed.

Place in the flow: between the command (compiler/commands/explore.py) and the trials (trial.py).  Before Ray
starts, the points are chosen (grid: every point; random: `samples` distinct points drawn with a seed; both with
the constraints applied on the resource model's estimate) and the calibration ranges measured once; the vc709
preset is always one more trial, to compare against.  Ray runs locally (`ray.init(num_cpus=workers)`, no
dashboard) or joins a cluster (`address`); Ray Tune schedules the trials, at most `workers` at once (grid and
random: a grid_search over the chosen points; bayes: Optuna's TPE through Ray Tune's OptunaSearch, maximizing
the space's objective).  Each finished trial is appended to DIR/trials.jsonl as it arrives (by the driver, so a
cluster's workers need no shared folder); a later sweep into the same DIR hands those records to the trials,
which return them instead of compiling again (resume).  At the end DIR gets results.csv, results.json (and
results.parquet where pyarrow is installed: Ray Tune brings it) and the plots (plots.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastmamba.compiler.explore.space import RESOURCES, Space
from fastmamba.compiler.explore.trial import REFERENCE, Workload, evaluate
from fastmamba.isa.errors import InputError
from fastmamba.isa.fileio import write_atomic

__all__ = ["SEARCHERS", "SweepOptions", "Sweep", "run_sweep", "choose_points", "load_done", "pareto_front",
           "COLUMNS", "TRIALS_FILE"]

SEARCHERS = ("grid", "random", "bayes")
TRIALS_FILE = "trials.jsonl"
METRICS = ("prefill_cycles", "decode_cycles", "prefill_tokens_per_s", "decode_tokens_per_s",
           "prefill_tokens_per_s_per_dsp", "decode_tokens_per_s_per_lut")
COLUMNS = ("reference", "status", "reason", *METRICS, *RESOURCES, "compile_s", "simulate_s", "cpu_s", "cached",
           "key")
DONE_STATUSES = ("ok", "failed")  # an "error" (a bug, or a trial Ray lost) is run again by a resumed sweep


@dataclass(frozen=True)
class SweepOptions:
    searcher: str = "grid"
    samples: int | None = None  # random and bayes: trials to run (default 20)
    workers: int = 1
    address: str | None = None
    seed: int = 0
    ray_temp_dir: str | None = None  # Ray's session folder (default: Ray's own choice)


@dataclass
class Sweep:
    """What a sweep produced: every trial's record (this space's, cached ones included), the points the
    constraints dropped, and times."""

    records: list[dict]
    dropped: dict[str, str]
    times: dict[str, float]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: (cost, value) with cost to minimize and value to maximize;
    a point is dominated when another has cost <= and value >= with one of them strict.  In increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def load_done(out: Path) -> dict[str, dict]:
    """The finished trials recorded in `out` (a previous sweep's trials.jsonl), by key."""
    path = out / TRIALS_FILE
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            if n == len(path.read_text().splitlines()):
                continue  # (a line cut short by an interrupted sweep)
            raise InputError(f"{path}: line {n} is not JSON (a results folder of another tool?)") from None
        if isinstance(record, dict) and record.get("key") and record.get("status") in DONE_STATUSES:
            done[record["key"]] = record
    return done


def choose_points(space: Space, options: SweepOptions, data: dict | None = None) -> tuple[list[dict], dict]:
    """The points grid or random search runs, and those the constraints drop (InputError when none is left);
    bayes: no fixed points ([]), the space checked to have a point meeting the constraints."""
    if options.searcher == "grid":
        return space.feasible(space.grid(), data)
    if options.searcher == "random":
        return space.feasible(space.sample(options.samples or 20, options.seed), data)
    space.check_satisfiable(data, options.seed)
    return [], {}


def _trial(config: dict, space: Space, workload: Workload, done: dict) -> None:
    """A Ray Tune trial: one point (grid/random: config["trial"]; bayes: the parameters themselves)."""
    from ray import tune

    spec = config.get("trial") or {"point": {k: v for k, v in config.items()}, "reference": False}
    record = evaluate(spec["point"], space, workload, spec["reference"], done)
    record.setdefault("units", {})
    tune.report({"objective": float(record.get(space.objective, 0.0) or 0.0), "record": json.dumps(record)})


def _ray_callback(arrived: Callable[[dict], None]):
    from ray import tune

    class Recorder(tune.Callback):
        """Takes each trial's record as it reports (in the driver); a trial Ray loses is an "error" record."""

        def __init__(self, arrived):
            self.arrived = arrived

        def __getstate__(self):  # Ray Tune pickles its callbacks into the experiment's state: the results file
            return {}  # and the progress stay here (a sweep resumes from trials.jsonl, not from Ray's state)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.arrived(json.loads(result["record"]))

        def on_trial_error(self, iteration, trials, trial, **info):
            spec = trial.config.get("trial") or {"point": dict(trial.config), "reference": False}
            self.arrived({**spec["point"], "reference": REFERENCE if spec["reference"] else "", "status": "error",
                          "reason": f"internal error: the Ray trial failed ({trial.error_file or 'no log'})",
                          "key": ""})

    return Recorder(arrived)


def _start_ray(options: SweepOptions) -> bool:
    """Start or join Ray; True when this call started it (and shuts it down at the end)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 is silent (the progress is ours)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                              "configure_logging": True}
    if options.address:
        kwargs["address"] = options.address
    else:
        kwargs["num_cpus"] = options.workers
        # Ray's raylet starts its workers at niceness +15 (its worker_niceness) relative to itself: on a machine
        # with other work, the trials (all the sweep's work) would only get what that work leaves
        kwargs["_system_config"] = {"worker_niceness": 0}
        if os.environ.get("PYTHONPATH"):  # the trials import the fastmamba this process imports
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
        if options.ray_temp_dir:
            kwargs["_temp_dir"] = options.ray_temp_dir
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot start or join Ray{' at ' + options.address if options.address else ''}: "
                         f"{str(exc).splitlines()[0]}") from None
    return True


def _tune(param_space: dict, trainable, options: SweepOptions, callback, storage: str, search_alg=None,
          samples: int = 1, metric: str | None = None) -> None:
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}), param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=samples, max_concurrent_trials=options.workers,
                                    reuse_actors=True, metric=metric, mode="max" if metric else None),
        run_config=tune.RunConfig(name="explore", storage_path=storage, verbose=0, callbacks=[callback]))
    tuner.fit()


def run_sweep(space: Space, workload: Workload, out: Path, options: SweepOptions,
              points: list[dict] | None = None, progress=None) -> Sweep:
    """Run the sweep (points: choose_points' when already chosen), append each new record to out/trials.jsonl,
    return every record of this sweep (the reference first, then the points in order; bayes: as they came)."""
    from ray import tune

    done = load_done(out)
    dropped: dict = {}
    if points is None:
        points, dropped = choose_points(space, options)
    times: dict[str, float] = {}
    records: list[dict] = []
    total = 1 + (len(points) if options.searcher != "bayes" else options.samples or 20)
    log = (out / TRIALS_FILE).open("a")

    def arrived(record: dict) -> None:
        records.append(record)
        if not record.get("cached"):
            log.write(json.dumps(record, sort_keys=True) + "\n")
            log.flush()
        if progress is not None:
            failed = sum(r["status"] != "ok" for r in records)
            progress.step(len(records), total, f"trial ({failed} failed)" if failed else "trial")

    t = time.perf_counter()
    started = _start_ray(options)
    times["ray_start_s"] = time.perf_counter() - t
    try:
        trainable = tune.with_parameters(_trial, space=space, workload=workload, done=done)
        callback = _ray_callback(arrived)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="fastmamba-explore-ray-") as storage:
            trials = [{"point": {}, "reference": True}] + [{"point": p, "reference": False} for p in points]
            if options.searcher == "bayes":
                import optuna
                from ray.tune.search.optuna import OptunaSearch

                optuna.logging.set_verbosity(optuna.logging.WARNING)
                _tune({"trial": tune.grid_search(trials[:1])}, trainable, options, callback, storage)
                search = OptunaSearch(seed=options.seed)
                _tune({k: tune.choice(list(v)) for k, v in space.parameters.items()}, trainable, options, callback,
                      storage, search, options.samples or 20, "objective")
            else:
                _tune({"trial": tune.grid_search(trials)}, trainable, options, callback, storage)
        times["sweep_s"] = time.perf_counter() - t
    finally:
        log.close()
        if started:
            import ray

            ray.shutdown()
    if options.searcher != "bayes":  # the order of the points (the reference first), not of completion
        index = {json.dumps(r, sort_keys=True): i for i, r in enumerate(trials)}
        records.sort(key=lambda r: index.get(json.dumps(_spec_of(r, space), sort_keys=True), len(index)))
    return Sweep(records, dropped, times)


def _spec_of(record: dict, space: Space) -> dict:
    return {"point": {k: record[k] for k in space.parameters if k in record and not record.get("reference")},
            "reference": bool(record.get("reference"))}


def write_results(sweep: Sweep, space: Space, out: Path, meta: dict) -> list[Path]:
    """results.csv, results.json (and results.parquet with pyarrow) in `out`; the paths written."""
    names = list(space.parameters) + list(COLUMNS)
    rows = [{k: r.get(k, "") for k in names} for r in sweep.records]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = [out / "results.csv", out / "results.json"]
    write_atomic(paths[0], text.getvalue())
    doc = {**meta, "parameters": {k: list(v) for k, v in space.parameters.items()}, "base": space.base,
           "constraints": [str(c) for c in space.constraints], "times_s": {k: round(v, 2) for k, v in
                                                                           sweep.times.items()},
           "dropped_by_constraints": sweep.dropped, "trials": sweep.records}
    write_atomic(paths[1], json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        return paths
    table = pa.Table.from_pylist([{k: (None if v == "" else v) for k, v in row.items()} for row in rows])
    with tempfile.NamedTemporaryFile(dir=out, suffix=".parquet.tmp", delete=False) as tmp:
        pq.write_table(table, tmp.name)
    os.replace(tmp.name, out / "results.parquet")
    paths.append(out / "results.parquet")
    return paths
