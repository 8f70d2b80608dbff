"""``edgesmith search RECIPE``: the multi-objective search over the recipe's ``search:``
block, run with Optuna (NSGA-II or TPE, seeded) in this process, or as Ray Tune
trials (:mod:`~edgesmith.search.ray_backend`).

The run folder (default ``runs/<recipe>-search``) holds everything and resumes:

- ``study.db``: the Optuna study (SQLite); a re-run continues it, and a trial that
  was cut off is retried with the same values, from its last finished stage;
- ``stages/<key>/``: the stage cache trials share (:mod:`~edgesmith.search.cache`);
- ``trials/NNNN/``: each trial's run folder and ``trial.json`` (its row);
- ``references/``: the fp32 and dynamic-int8 teacher files and their rows;
- ``search.json``: the front, the reference points, stage executions vs reuses,
  the timing queue's log; ``results.db``: every row in a results store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesmith import atomic
from edgesmith.errors import EdgesmithError, RecipeError
from edgesmith.progress import log

STUDY = "search"


def load_search(recipe, overrides: list[str] | None = None, trials: int | None = None):
    """The recipe (validated, search block included) and its SearchConfig; checks every target is reachable."""
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.search.timing import check_reachable

    r = load_recipe(recipe, overrides)
    if r.search is None:
        raise RecipeError("search", "the recipe has no 'search:' block; add one with 'space:' and 'objectives:'")
    if trials is not None:
        r.search.trials = trials
    seen = set()
    for i, o in enumerate(r.search.objectives):
        if o.target not in seen:
            seen.add(o.target)
            check_reachable(o.target, f"search.objectives[{i}].target")
    return r, r.search


def run_dir_for(recipe, out: str | Path | None) -> Path:
    return Path(out or Path("runs") / f"{recipe.name}-search")


def distributions(cfg) -> dict[str, Any]:
    """Optuna distributions of the search space (lists among choices travel as JSON text)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for path, p in cfg.space.items():
        if p.choices is not None:
            out[path] = CategoricalDistribution([_enc(c) for c in p.choices])
        elif p.int:
            out[path] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            out[path] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


def _enc(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def decode(cfg, params: dict[str, Any]) -> dict[str, Any]:
    """Trial params back to recipe values, in the space's order."""
    out = {}
    for path, p in cfg.space.items():
        v = params[path]
        if p.choices is not None and isinstance(v, str) and any(isinstance(c, (list, dict)) for c in p.choices):
            v = json.loads(v)
        out[path] = v
    return out


def sampler(cfg, done: int = 0):
    """The study's sampler, seeded with ``search.seed`` plus the trials the study already
    holds (``done``): a resumed process must not replay the first process's random draws
    (it did: a Fashion-MNIST search resumed after 3 trials drew those 3 points again)."""
    import optuna

    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=cfg.seed + done, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=cfg.seed + done, population_size=cfg.population)


def open_study(run_dir: Path, cfg, create: bool = True):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = run_dir / "study.db"
    if not create and not db.is_file():
        raise EdgesmithError(f"{run_dir}: no search has run here yet (no study.db); run `edgesmith search` first")
    run_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{db}", load_if_exists=True,
                                directions=[o.direction for o in cfg.objectives], sampler=sampler(cfg))
    done = len(study.get_trials(deepcopy=False))
    if done:
        study.sampler = sampler(cfg, done)
    return study


def check_same_search(run_dir: Path, recipe) -> dict:
    """The run folder's search, or refuse a folder that holds a different one."""
    from edgesmith.search.trial import trial_recipe

    spec = {"space": {k: v.to_dict() for k, v in recipe.search.space.items()},
            "objectives": [o.label() for o in recipe.search.objectives],
            "sampler": recipe.search.sampler, "seed": recipe.search.seed,
            "base": trial_recipe(recipe.to_dict(), {})}
    path = run_dir / "spec.json"
    if path.is_file():
        old = json.loads(path.read_text())
        for k in spec:
            # a recipe key that a later edgesmith added (absent from the old spec) is not a change: its
            # default keeps the old behaviour, and each stage's content key still decides what is reused
            if old.get(k) != _known(json.loads(json.dumps(spec[k])), old.get(k)):
                raise EdgesmithError(f"{run_dir}: holds a search with a different {k}"
                                     f"{_first_change(old.get(k), spec[k]) or ''}; give another --out or remove the folder")
    else:
        atomic.write_json(path, spec)
    return spec


def _known(new: Any, old: Any) -> Any:
    """``new`` without the dict keys that ``old`` lacks (recursively)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _known(v, old[k]) for k, v in new.items() if k in old}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_known(a, b) for a, b in zip(new, old, strict=True)]
    return new


def _first_change(old: Any, new: Any, at: str = "") -> str | None:
    """`` (at KEY: OLD -> NEW)`` for the first value that differs, for the error line."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in old:
            if k not in new:
                return f" (at {at}{k}: no longer in the recipe)"
            if (d := _first_change(old[k], new[k], f"{at}{k}.")) is not None:
                return d
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return next((d for i, (a, b) in enumerate(zip(old, new, strict=True))
                     if (d := _first_change(a, b, f"{at.rstrip('.')}[{i}].")) is not None), None)
    return None if old == json.loads(json.dumps(new)) else f" (at {at.rstrip('.')}: {old!r} -> {new!r})"


# ------------------------------------------------------------------ local backend
def search(recipe, out: str | Path | None = None, *, overrides: list[str] | None = None,
           trials: int | None = None, reference_files: list[str] = (), db: str | Path | None = None,
           ray_address: str | None = None, ray_workers: int = 2) -> dict:
    """Run (or resume) the search of ``recipe``'s ``search:`` block; returns ``search.json``'s content.

    Example:
        >>> from edgesmith.search import search
        >>> result = search("my-recipe.yaml", out="runs/my-search")  # doctest: +SKIP
    """
    from edgesmith.search.cache import StageCache
    from edgesmith.search.timing import TimingQueue
    from edgesmith.search.trial import references

    r, cfg = load_search(recipe, overrides, trials)
    run_dir = run_dir_for(r, out)
    spec = check_same_search(run_dir, r)
    base = spec["base"]
    if ray_address is not None:
        from edgesmith.search.ray_backend import run_ray

        rows, refs, events = run_ray(run_dir, base, cfg, reference_files, ray_address, ray_workers)
    else:
        queues = {t: TimingQueue(t) for t in sorted({o.target for o in cfg.objectives})}
        cache = StageCache(run_dir / "stages")
        refs = references(run_dir, base, cfg, queues, cache, list(reference_files)) if cfg.references else []
        run_local(run_dir, base, cfg, queues, cache)
        rows = load_rows(run_dir)
        events = {t: q.get_events() for t, q in queues.items()}
    return finish(run_dir, r, cfg, rows, refs, events, db)


def run_local(run_dir: Path, base: dict, cfg, queues: dict, cache) -> None:
    """Ask, run and tell trials one at a time until the study holds ``cfg.trials`` finished ones."""
    from optuna.trial import TrialState

    from edgesmith.search.trial import run_trial

    study = open_study(run_dir, cfg)
    retry_stale(study, run_dir, cache, cfg)
    enqueue_start(study, cfg)
    dists = distributions(cfg)
    while _finished(run_dir) < cfg.trials:
        t = study.ask(dists)
        params = decode(cfg, t.params)
        log(f"[bold]search trial {t.number}[/bold] ({_finished(run_dir) + 1}/{cfg.trials}): {params}")
        try:
            row = run_trial(run_dir, t.number, base, params, cfg, queues, cache)
        except Exception as e:  # noqa: BLE001 - one point the pipeline cannot make ends that trial, not the search
            why = str(e) if isinstance(e, EdgesmithError) else f"{type(e).__name__}: {e}".splitlines()[0]
            log(f"  [red]trial {t.number} failed: {why}[/red]")
            save_row(run_dir, {"number": t.number, "name": f"trial-{t.number}", "params": params, "error": why,
                               "recipe": None, "values": {}})
            study.tell(t, state=TrialState.FAIL)
            continue
        save_row(run_dir, row)
        study.tell(t, [row["values"][o.label()] for o in cfg.objectives])


def enqueue_start(study, cfg) -> None:
    """A new study's first trials: the ``search.start`` points (Optuna ``enqueue_trial``; a
    key a point leaves out is sampled). A resumed study already holds them."""
    if study.get_trials(deepcopy=False):
        return
    for point in cfg.start:
        study.enqueue_trial({k: _enc(v) for k, v in point.items()})


def _finished(run_dir: Path) -> int:
    """Trials with a row (completed or failed for a reason of their own; not those cut off)."""
    return len(list((run_dir / "trials").glob("*/trial.json")))


def retry_stale(study, run_dir: Path, cache, cfg) -> None:
    """Trials a previous process left running: mark them failed, keep their finished
    stages in the cache and queue their values again (they resume where they stopped)."""
    from optuna.trial import TrialState

    from edgesmith.search.trial import trial_recipe

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        params = decode(cfg, t.params)
        out = run_dir / "trials" / f"{t.number:04d}"
        if out.is_dir():
            from edgesmith.conf.recipe import load_recipe
            from edgesmith.pipeline.runner import Runner

            raw = trial_recipe(json.loads((run_dir / "spec.json").read_text())["base"], params)
            raw.setdefault("benchmark", {})["runtimes"] = []
            cache.harvest(Runner(load_recipe(raw), out), [])
        log(f"  trial {t.number} was cut off: retrying its values from its last finished stage")
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params)


# ------------------------------------------------------------------ rows and results
def save_row(run_dir: Path, row: dict) -> None:
    atomic.write_json(run_dir / "trials" / f"{row['number']:04d}" / "trial.json", row)


def load_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(p.read_text()) for p in sorted((run_dir / "trials").glob("*/trial.json"))]
    return sorted(rows, key=lambda r: r["number"])


def finish(run_dir: Path, recipe, cfg, rows: list[dict], refs: list[dict], events: dict, db) -> dict:
    """Write ``search.json`` and every row to the results store; returns the result."""
    from edgesmith.search.front import dominates, pareto
    from edgesmith.search.timing import host_cpu, overlaps

    for row in rows + refs:  # rows written before export_key was recorded: read it from the folder
        if not row.get("export_key") and row.get("out"):
            row["export_key"] = export_key(Path(row["out"]))
    front = pareto(rows, cfg.objectives)
    for ref in refs:  # which trial dominates each reference on the objectives it was measured on
        ref["dominated_by"] = [r["number"] for r in rows if dominates(r, ref, cfg.objectives)]
    done = [r for r in rows if not r.get("error")]
    result = {
        "recipe": recipe.name, "run_dir": str(run_dir), "host_cpu": host_cpu(),
        "objectives": [{"label": o.label(), "direction": o.direction} for o in cfg.objectives],
        "trials": len(rows), "complete": len(done), "failed": len(rows) - len(done),
        "front": [r["number"] for r in front],
        "stage_executions": sum(len(r.get("executed") or []) for r in rows),
        "stage_reuses": sum(len(r.get("reused") or []) for r in rows),
        "stages_per_trial": max((len(r.get("executed") or []) + len(r.get("reused") or []) for r in done), default=0),
        "references": [{**{k: v for k, v in ref.items() if k not in ("measurements", "recipe")},
                        "p50_ci": {f"{m['target']}/{m['runtime']}": m.get("p50_ci") for m in ref.get("measurements") or []}}
                       for ref in refs],
        "timing": {t: {"events": len(ev), "overlaps": len(overlaps(ev))} for t, ev in events.items()},
        "rows": [{**{k: r.get(k) for k in ("number", "params", "values", "executed", "reused", "seconds", "error",
                                           "export_key")},
                  "p50_ci": {f"{m['target']}/{m['runtime']}": m.get("p50_ci") for m in r.get("measurements") or []}}
                 for r in rows],
    }
    atomic.write_json(run_dir / "search.json", result)
    atomic.write_json(run_dir / "references.json", refs)
    atomic.write_json(run_dir / "timing.json", events)
    store_rows(db or run_dir / "results.db", recipe.name, run_dir, rows, refs, result["front"])
    return result


def store_rows(db: str | Path, recipe: str, run_dir: Path, rows: list[dict], refs: list[dict],
               front: list[int]) -> None:
    """One results-store row per measurement, with the search's facts in ``extra``;
    a row already stored (same search, point and file) is not added again."""
    from edgesmith.benchmarks.store import ResultsStore

    with ResultsStore(db) as store:
        have = {(b["extra"] or {}).get("search_point") for b in store.rows(recipe=recipe)
                if (b["extra"] or {}).get("search") == str(run_dir)}
        for row in rows + refs:
            for m in row.get("measurements") or []:
                point = f"{row['name']}|{m['file']}"
                if point in have:
                    continue
                bench = {**m["result"], "target": m["target"], "runtime": m["runtime"], "model": row["name"],
                         "accuracy": m["accuracy"], "model_size_bytes": m["size_bytes"],
                         "search": str(run_dir), "search_point": point, "trial": row.get("number"),
                         "reference": bool(row.get("reference")), "on_front": row.get("number") in front
                         and not row.get("reference"), "params": row.get("params"),
                         "values": row.get("values"), "cosine": m.get("cosine"), "trial_recipe": row.get("recipe")}
                store.add_benchmark(bench, recipe=recipe, source=f"search:{run_dir}")


def export_key(out: Path) -> str | None:
    """The content key of a run folder's export step (same key: the same files)."""
    meta = next(out.glob("*-export/stage.json"), None)
    return json.loads(meta.read_text()).get("key") if meta else None


def export_recipe(run_dir: Path, number: int, dest: str | Path | None = None) -> Path:
    """Write trial ``number``'s recipe as a plain recipe (no search block) that reproduces it."""
    import yaml

    path = run_dir / "trials" / f"{number:04d}" / "trial.json"
    if not path.is_file():
        have = ", ".join(str(r["number"]) for r in load_rows(run_dir)) or "none"
        raise EdgesmithError(f"--export-recipe {number}: no such trial in {run_dir} (trials: {have})")
    row = json.loads(path.read_text())
    if not row.get("recipe"):
        raise EdgesmithError(f"--export-recipe {number}: trial {number} failed ({row.get('error')}); pick another")
    raw = dict(row["recipe"])
    raw["description"] = (f"Exported from search trial {number} of {run_dir} "
                          f"({', '.join(f'{k}={v}' for k, v in row['params'].items())}).\n")
    dest = Path(dest or run_dir / f"trial-{number}.yaml")
    return atomic.write_text(dest, yaml.safe_dump(raw, sort_keys=False))
