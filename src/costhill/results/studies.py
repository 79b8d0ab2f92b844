"""A finished sweep as an Optuna study: for ``costhill export --optuna`` (so that
optuna-dashboard shows it) and for parameter importance (Optuna's fANOVA) in ``compare``.

It reads only the store. Each arm (a config but for its seed) is one trial: its parameters are
the settings that vary across the sweep, its value the mean over seeds of the best validation
accuracy (the quantity costhill tunes on; test accuracy is kept as a user attribute, never as
the value), its intermediate values the mean validation accuracy after each epoch. A pruned arm
is a pruned trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from ..errors import StoreError
from ..store import Store
from .compare import arm_key, arm_settings, varying_settings

STATUSES = ("finished", "diverged", "pruned")


@dataclass(frozen=True)
class Arm:
    params: dict[str, Any]
    value: float
    pruned: bool
    per_epoch: dict[int, float]
    test: float | None
    run_ids: list[int]


def sweep_arms(store: Store, sweep: str) -> tuple[list[Arm], list[str]]:
    """The sweep's arms (finished, diverged and pruned) and the settings that vary across them."""
    runs = store.sweep_runs(sweep, statuses=STATUSES)
    if not runs:
        known = ", ".join(store.sweeps()) or "none"
        raise StoreError(f"sweep {sweep!r}: no trained runs in {store.path} (sweeps: {known})")
    varying = varying_settings([r["config"] for r in runs])
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(arm_key(run["config"]), []).append(run)
    epochs: dict[int, dict[int, float]] = {}
    for run_id, epoch, accuracy in store.epoch_rows(
        [r["run_id"] for r in runs], ("epoch", "val_accuracy")
    ):
        if accuracy is not None and math.isfinite(accuracy):
            epochs.setdefault(run_id, {})[epoch] = accuracy
    return [_arm(members, varying, epochs) for members in groups.values()], varying


def _arm(members: list[dict], varying: list[str], epochs: dict[int, dict[int, float]]) -> Arm:
    best = [m["best_val_accuracy"] or 0.0 for m in members]
    tests = [m["test_at_best_val"] for m in members if m["test_at_best_val"] is not None]
    steps = sorted({e for m in members for e in epochs.get(m["run_id"], {})})
    per_epoch = {}
    for step in steps:
        seen = [epochs[m["run_id"]][step] for m in members if step in epochs.get(m["run_id"], {})]
        per_epoch[step] = sum(seen) / len(seen)
    return Arm(
        params={k: _plain(v) for k, v in arm_settings(members[0]["config"], varying).items()},
        value=sum(best) / len(best),
        pruned=any(m["status"] == "pruned" for m in members),
        per_epoch=per_epoch,
        test=sum(tests) / len(tests) if tests else None,
        run_ids=[m["run_id"] for m in members],
    )


def _plain(value: Any) -> Any:
    """A setting as a value Optuna stores: lists (hidden widths, opt pairs) as JSON text."""
    plain = value is None or isinstance(value, bool | int | float | str)
    return value if plain else json.dumps(value)


def _distributions(arms: list[Arm], varying: list[str]) -> dict[str, Any]:
    """Each varying setting's distribution: numbers as ranges (log where they span a decade or
    more of positive values), anything else as a choice."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    found: dict[str, Any] = {}
    for key in varying:
        values = [a.params[key] for a in arms if key in a.params]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and len(set(values)) > 2:
            low, high = float(min(values)), float(max(values))
            log = low > 0 and high / low >= 10
            found[key] = FloatDistribution(low, high, log=log)
        else:
            found[key] = CategoricalDistribution(sorted(set(values), key=str))
    return found


def _trials(arms: list[Arm], varying: list[str]) -> list[Any]:
    import optuna
    from optuna.distributions import FloatDistribution

    distributions = _distributions(arms, varying)
    ranges = {k for k, d in distributions.items() if isinstance(d, FloatDistribution)}
    trials = []
    for arm in arms:
        params = {k: float(v) if k in ranges else v for k, v in arm.params.items()}
        state = optuna.trial.TrialState.PRUNED if arm.pruned else optuna.trial.TrialState.COMPLETE
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=None if arm.pruned else arm.value,
                intermediate_values=arm.per_epoch,
                state=state,
                user_attrs={"run_ids": arm.run_ids, "test_at_best_val": arm.test},
            )
        )
    return trials


def export_study(store: Store, sweep: str, storage_url: str) -> int:
    """Write ``sweep`` as the Optuna study of that name at ``storage_url``; returns the number
    of trials written. A study of that name already there is refused, not overwritten."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError  # Optuna's own storage layer: present with it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "://" not in storage_url:  # most often a file's name, meant as an SQLite database
        raise StoreError(
            f"storage_url {storage_url}: not a storage URL; an SQLite file is named "
            f"sqlite:///{storage_url}"
        )
    arms, varying = sweep_arms(store, sweep)
    try:
        study = optuna.create_study(
            study_name=sweep, storage=storage_url, direction="maximize", load_if_exists=False
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise StoreError(
            f"storage_url {storage_url}: already holds a study named {sweep!r}, which is not "
            f"overwritten: delete it there (optuna delete-study --study-name {sweep} --storage "
            f"{storage_url}) or write to another storage"
        ) from None
    except (ValueError, ImportError, SQLAlchemyError) as err:
        # SQLAlchemy appends a "Background on this error" link on a line of its own.
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"storage_url {storage_url}: cannot be used ({reason})") from None
    study.set_user_attr("made_by", "costhill export --optuna")
    study.add_trials(_trials(arms, varying))
    return len(arms)


def importance(
    store: Store, sweep: str, *, within: tuple[str, Any] | None = None
) -> dict[str, float]:
    """Each varying setting's share of the variance of the arms' value (Optuna's fANOVA over the
    finished arms; a fixed seed, so the same store gives the same shares).

    Over the whole sweep, an optimizer's own hyperparameter (``opt.NAME``) counts only where
    every finished arm has it, as Optuna weighs conditional parameters; ``within = (setting,
    value)`` weighs the arms with that value alone (e.g. ``("optimizer", "adam")``), over the
    settings that vary among them, so Adam's ``opt.b1`` gets its share there.
    """
    arms, varying = sweep_arms(store, sweep)
    return _importance(sweep, arms, varying, within)


def conditional_importance(store: Store, sweep: str) -> dict[str, dict[str, float]]:
    """For each optimizer with hyperparameters of its own that vary (``opt.NAME``) in a sweep of
    several optimizers, ``importance`` within that optimizer's arms: the shares the sweep-wide
    importance cannot give them. Optimizers with too few finished arms are left out."""
    arms, varying = sweep_arms(store, sweep)
    if "optimizer" not in varying:
        return {}
    found = {}
    for optimizer in sorted({str(a.params["optimizer"]) for a in arms}):
        own = [a for a in arms if a.params["optimizer"] == optimizer]
        if not any(k.startswith("opt.") for k in _varying_among(own, varying)):
            continue
        try:
            found[optimizer] = _importance(sweep, arms, varying, ("optimizer", optimizer))
        except StoreError:
            continue
    return found


def _varying_among(arms: list[Arm], keys: list[str]) -> list[str]:
    """Those of ``keys`` whose value differs between ``arms`` (absent counts as a value)."""
    return [k for k in keys if len({repr(a.params.get(k)) for a in arms}) > 1]


def _importance(
    sweep: str, arms: list[Arm], varying: list[str], within: tuple[str, Any] | None
) -> dict[str, float]:
    """``importance`` of arms already read."""
    import optuna

    finished = [a for a in arms if not a.pruned]
    if within is not None:
        key, value = within
        finished = [a for a in finished if a.params.get(key) == value]
        varying = _varying_among(finished, varying)
        finished = [replace(a, params={k: a.params[k] for k in varying}) for a in finished]
    if len(finished) < 2 or not varying:
        among = f" among {within[0]}={within[1]}" if within else ""
        raise StoreError(f"sweep {sweep!r}: importance needs two finished arms that differ{among}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(_trials(finished, varying))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except ImportError as err:
        raise StoreError(f"importance: {err} (pip install 'costhill[importance]')") from None
