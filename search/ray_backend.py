"""``edgesmith search RECIPE --ray [ADDRESS]``: the search's trials as Ray Tune trials.

The search algorithm is still Optuna (Ray Tune's ``OptunaSearch`` with the same
seeded sampler and distributions as the local backend, its study in the run
folder's ``study.db``), so on the same seeds the two backends try the same points.
Each trial runs :func:`edgesmith.search.trial.run_trial` on a worker, writing into
the run folder (local Ray, or a folder every node mounts), and reports its row,
which the driver saves there. Latency goes through one :class:`TimingQueue` per
target living in a threaded Ray actor: measurements queue there, one at a time, and
wait for training leases held on the actor's machine. A trial that fails (a worker
lost, a preempted node) is retried by Tune up to ``max_failures`` times; the retry
finds the stages it finished in its folder and the shared stage cache, so it goes
on from the last finished one.

Point it at a cluster: ``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others, then ``edgesmith search RECIPE --ray HEAD:6379``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgesmith.errors import MissingExtraError
from edgesmith.search.timing import TimingQueue

MAX_FAILURES = 2


def _ray():
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise MissingExtraError("ray", "ray", "edgesmith search --ray") from None
    return ray


class RayQueue:
    """The driver's and the trials' handle on a target's queue actor (same calls as TimingQueue)."""

    def __init__(self, handle: Any, target: str) -> None:
        self.handle, self.target = handle, target

    def measure(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        import ray

        return ray.get(self.handle.measure.remote(*args, **kwargs))

    @contextlib.contextmanager
    def training(self, label: str = "") -> Iterator[None]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        start = ray.get(self.handle.acquire_training.remote(label, node))
        try:
            yield
        finally:
            ray.get(self.handle.release_training.remote(label, start, node))

    def get_events(self) -> list[dict[str, Any]]:
        import ray

        return ray.get(self.handle.get_events.remote())


class _QueueActor(TimingQueue):
    """A TimingQueue that knows which Ray node it is on (local targets are that machine)."""

    def __init__(self, target: str) -> None:
        import ray

        super().__init__(target, node=ray.get_runtime_context().get_node_id())


def _picklable(sampler):
    """Optuna 5.1's NSGA-II sampler holds a thread lock, which Tune cannot pickle with its
    searcher: the same sampler (state and seed kept) with the lock made anew on unpickling."""
    lock = getattr(sampler, "_thread_lock", None)
    if lock is None:
        return sampler

    base = type(sampler)

    class Picklable(base):
        def __reduce__(self):
            state = {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}
            return _rebuild, (base, state)

    sampler.__class__ = Picklable
    return sampler


def _rebuild(cls, state):
    import threading

    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    obj._thread_lock = threading.Lock()
    return obj


def _numbered(base: type) -> type:
    """Ray Tune's OptunaSearch that also hands each trial its Optuna trial number (``_number``)."""

    class Numbered(base):
        def suggest(self, trial_id: str):
            config = super().suggest(trial_id)
            if isinstance(config, dict):
                config["_number"] = self._ot_trials[trial_id].number
            return config

    return Numbered


def _trainable(config: dict, run_dir: str, base: dict, cfg, queues: dict) -> None:
    from ray import tune

    from edgesmith.search.cache import StageCache
    from edgesmith.search.study import decode
    from edgesmith.search.trial import run_trial

    os.environ.setdefault("EDGESMITH_QUIET", "1")
    params = decode(cfg, {k: config[k] for k in cfg.space})
    number = int(config["_number"])  # the Optuna trial's number, as in the local backend
    run_dir = Path(run_dir)
    try:
        row = run_trial(run_dir, number, base, params, cfg, queues, StageCache(run_dir / "stages"))
    except Exception as e:  # noqa: BLE001 - a failed trial is a row with its error, reported once
        from edgesmith.errors import EdgesmithError

        if not isinstance(e, EdgesmithError):
            raise  # Tune retries it (a crash, a lost worker), from its last finished stage
        tune.report({"row": json.dumps({"number": number, "name": f"trial-{number}", "params": params,
                                        "error": str(e), "recipe": None, "values": {}})})
        return
    report = {f"obj{i}": row["values"][o.label()] for i, o in enumerate(cfg.objectives)}
    tune.report({**report, "row": json.dumps(row, default=str)})


def run_ray(run_dir: Path, base: dict, cfg, reference_files: list[str], address: str,
            workers: int) -> tuple[list[dict], list[dict], dict]:
    """Run the search's remaining trials on Ray; returns (rows, reference rows, queue events)."""
    ray = _ray()
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from edgesmith.search.cache import StageCache
    from edgesmith.search.study import (
        STUDY,
        distributions,
        enqueue_start,
        load_rows,
        open_study,
        retry_stale,
        save_row,
    )
    from edgesmith.search.trial import references

    run_dir = run_dir.absolute()
    started = not ray.is_initialized()
    if started:
        env = {"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "EDGESMITH_QUIET": "1",
                            **{k: v for k, v in os.environ.items() if k.startswith("EDGESMITH_")}}}
        if address == "local":
            ray.init(num_cpus=workers + 1, include_dashboard=False, runtime_env=env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
    try:
        actor = ray.remote(num_cpus=0, max_concurrency=64)(_QueueActor)
        queues = {t: RayQueue(actor.remote(t), t) for t in sorted({o.target for o in cfg.objectives})}
        cache = StageCache(run_dir / "stages")
        refs = references(run_dir, base, cfg, queues, cache, reference_files) if cfg.references else []
        done = load_rows(run_dir)
        remaining = cfg.trials - len(done)
        if remaining > 0:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = open_study(run_dir, cfg)
            retry_stale(study, run_dir, cache, cfg)  # trials a killed driver left running
            enqueue_start(study, cfg)
            storage = optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'study.db'}")
            searcher = _numbered(OptunaSearch)(space=distributions(cfg), metric=[f"obj{i}" for i in range(len(cfg.objectives))],
                                    mode=["max" if o.direction == "maximize" else "min" for o in cfg.objectives],
                                    sampler=_picklable(study.sampler), storage=storage, study_name=STUDY)
            fn = tune.with_resources(tune.with_parameters(
                _trainable, run_dir=str(run_dir), base=base, cfg=cfg, queues=queues), {"cpu": 1})
            tuner = tune.Tuner(
                fn,
                tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers),
                                            num_samples=remaining),
                run_config=tune.RunConfig(name="tune", storage_path=str(run_dir / "ray"), verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)),
            )
            for res in tuner.fit():
                if res.metrics and res.metrics.get("row"):
                    save_row(run_dir, json.loads(res.metrics["row"]))
        events = {t: q.get_events() for t, q in queues.items()}
    finally:
        if started:
            ray.shutdown()
    return load_rows(run_dir), refs, events
