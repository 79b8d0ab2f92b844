"""Compare the arms of a sweep fairly, from stored results only.

    costhill compare lr-demo.toml --by optimizer

An *arm* is a config without its seed. Per arm, over its seeds: best and final validation accuracy,
final test accuracy, test accuracy at the epoch of best validation accuracy, and the epochs, steps
and seconds to the target validation accuracy, as mean ± std and min/max, with divergences counted.

The tuning protocol is that of DeepOBS and "Descending through a Crowded Valley": within each value
of the ``by`` axis (the optimizer, by default) the arm with the best mean best-validation accuracy
is chosen, and only then is its test accuracy reported. Test metrics never take part in a choice.
The chosen arms are compared pairwise on matched seeds (an exact sign-flip permutation test), and
AlgoPerf-style performance profiles give, for each factor tau, the fraction of arms whose mean
time to the target is within tau times the fastest arm's.

In a tuning sweep, each arm its pruner stopped is set against its group's chosen arm at the
epoch it was stopped, on matched seeds (``PruneDecision``), in what the pruner judged there
(validation accuracy, or validation cost, as the store's ``sweep_pruning`` says): where the
chosen arm's lead is under twice its standard error, the seeds could not tell the two apart,
and the pruner chose on noise. A rung that early is then too early for that group (a later
``[prune] min_epochs``).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import flat_settings
from ..errors import StoreError
from ..store import SearchedRange, Store, SweepPruning

TAUS = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
AT_KINDS = ("epochs", "examples", "steps", "seconds")


@dataclass
class Stat:
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int

    @classmethod
    def of(cls, values: list[float | None]) -> Stat:
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not xs:
            return cls(None, None, None, None, 0)
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return cls(statistics.fmean(xs), std, min(xs), max(xs), len(xs))

    def text(self, digits: int = 4) -> str:
        if self.mean is None:
            return "—"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass
class ArmRow:
    arm: dict[str, Any]
    label: str
    seeds: list[int]
    diverged: int
    best_val: Stat
    final_val: Stat
    final_test: Stat
    test_at_best_val: Stat
    reached: int
    epochs_to_target: Stat
    steps_to_target: Stat
    seconds_to_target: Stat
    at_budget: Stat | None = None  # validation accuracy at an equal budget (``compare(at=...)``)
    per_seed_val: dict[int, float] = field(default_factory=dict)
    per_seed_test: dict[int, float] = field(default_factory=dict)


@dataclass
class Choice:
    group: str
    chosen: str
    best_val: Stat
    test_at_best_val: Stat
    candidates: int


@dataclass
class Paired:
    a: str
    b: str
    seeds: int
    mean_difference: float  # test accuracy of a minus b, at each arm's best validation epoch
    p_value: float
    note: str


@dataclass
class PruneDecision:
    """A pruned arm against its group's chosen arm at the epoch the pruner stopped it."""

    group: str
    pruned: str
    kept: str
    epoch: int
    metric: str  # what the pruner judged: "val_accuracy" or "val_cost"
    seeds: int  # matched seeds with a finite ``metric`` at that epoch in both arms
    lead: float  # mean over those seeds of the chosen arm's advantage in ``metric`` there
    standard_error: float | None  # of ``lead``; None with one matched seed
    within_noise: bool | None  # lead under twice its standard error; None: one seed cannot say


@dataclass
class AtTheEdge:
    """A group's chosen arm holding the largest or smallest value of a setting that its group
    tried: the best value may lie beyond what was tried."""

    group: str
    chosen: str
    setting: str
    value: float
    side: str  # "largest" or "smallest"
    tried: int  # distinct values of the setting among the group's arms, pruned ones too
    # A searched range's end that lies further from ``value`` than the next value tried does
    # (more draws would look between); None where ``value`` is at its range's end, or a grid's.
    range_end: float | None = None


def edge_text(edge: AtTheEdge) -> str:
    """One chosen arm at the edge, in words: ``adam: lr=0.01 is the largest of 5 lr values``."""
    said = (
        f"{edge.group}: {edge.setting}={edge.value:g} is the {edge.side} of the {edge.tried} "
        f"{edge.setting} values tried"
    )
    return said if edge.range_end is None else f"{said}, its range goes on to {edge.range_end:g}"


def edge_notes(edges: list[AtTheEdge]) -> list[tuple[str, list[AtTheEdge]]]:
    """The edges under what each kind calls for, in the words the CLI and the report show: a
    wider range where the chosen value is at its range's end, more trials where it is short."""
    at_end = [edge for edge in edges if edge.range_end is None]
    short = [edge for edge in edges if edge.range_end is not None]
    notes = [
        ("at the edge of what was tried (the best may lie beyond it: widen the range)", at_end),
        (
            "at the edge of what was drawn, short of its range's end (the best may lie between: "
            "more trials would look there)",
            short,
        ),
    ]
    return [(words, found) for words, found in notes if found]


# What ``PruneDecision.within_noise`` means, in the words the CLI and the report show.
NOISE_RULE = "the chosen arm's lead at that epoch under twice its standard error over matched seeds"
# What a pruner judged (``PruneDecision.metric``), in words.
METRIC_WORDS = {"val_accuracy": "validation accuracy", "val_cost": "validation cost"}


def pruned_by(pruning: SweepPruning | None) -> str:
    """Who stopped a sweep's pruned arms, in words: ``asha on validation cost``."""
    if pruning is None:  # a store from before version 4 kept no word of it
        return "the tuning sweep's pruner"
    return f"{pruning.pruner} on {METRIC_WORDS.get(pruning.metric, pruning.metric)}"


def noise_rule(decisions: list[PruneDecision]) -> str:
    """``NOISE_RULE``, with what the decisions' pruner judged."""
    judged = sorted({METRIC_WORDS.get(d.metric, d.metric) for d in decisions})
    return f"{NOISE_RULE}, in {' and '.join(judged)}" if judged else NOISE_RULE


def decided_on_noise(decisions: list[PruneDecision]) -> tuple[int, list[PruneDecision]]:
    """How many of ``decisions`` the seeds could judge (two or more matched), and those of them
    made within the seeds' noise, the smallest lead first."""
    judged = [d for d in decisions if d.within_noise is not None]
    return len(judged), sorted((d for d in judged if d.within_noise), key=lambda d: d.lead)


@dataclass
class Comparison:
    sweep: str
    target: float | None
    at: tuple[str, float] | None
    by: str
    varying: list[str]
    rows: list[ArmRow]
    choices: list[Choice]
    paired: list[Paired]
    profile: dict[str, list[float]]
    # Arms a tuning sweep's pruner stopped early: shown apart, never chosen.
    pruned: list[ArmRow] = field(default_factory=list)
    decisions: list[PruneDecision] = field(default_factory=list)
    edges: list[AtTheEdge] = field(default_factory=list)
    pruning: SweepPruning | None = None  # the sweep's pruner and what it judged, where stored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sign_flip_p_value(differences: list[float]) -> float:
    """Two-sided exact p-value of a paired sign-flip permutation test (exact up to 16 pairs)."""
    n = len(differences)
    if n == 0:
        return 1.0
    observed = abs(sum(differences))
    if n > 16:  # 65,536 sign patterns is plenty; beyond that use the normal approximation
        mean = statistics.fmean(differences)
        sd = statistics.stdev(differences)
        if sd == 0:
            return 0.0 if mean else 1.0
        z = abs(mean) / (sd / math.sqrt(n))
        return math.erfc(z / math.sqrt(2))
    extreme = sum(
        abs(sum(s * d for s, d in zip(signs, differences, strict=True))) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=n)
    )
    return extreme / 2**n


def arm_key(config: dict[str, Any]) -> str:
    """What makes a run one arm: its config but for its seed."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True)


def _epochs(store: Store, runs: list[dict]) -> Iterator[tuple[int, int, int, float | None, float]]:
    """(run id, epoch, steps, validation accuracy or test where none, cumulative training
    seconds) of every stored epoch of ``runs``, in order."""
    elapsed: dict[int, float] = {}
    columns = ("epoch", "steps", "val_accuracy", "test_accuracy", "seconds")
    for run_id, epoch, steps, val, test, seconds in store.epoch_rows(
        [r["run_id"] for r in runs], columns
    ):
        elapsed[run_id] = elapsed.get(run_id, 0.0) + seconds
        yield run_id, epoch, steps, (val if val is not None else test), elapsed[run_id]


def _targets(store: Store, runs: list[dict], target: float) -> dict[int, tuple[int, int, float]]:
    """Recompute (epoch, step, seconds) to ``target`` validation accuracy from stored epochs."""
    reached: dict[int, tuple[int, int, float]] = {}
    for run_id, epoch, steps, measured, seconds in _epochs(store, runs):
        if run_id not in reached and measured is not None and measured >= target:
            reached[run_id] = (epoch, steps, seconds)
    return reached


def _at_budget(store: Store, runs: list[dict], kind: str, amount: float) -> dict[int, float]:
    """Each run's validation accuracy (test where it holds out none) at the last epoch whose
    cumulative epochs, examples, steps or training seconds are within ``amount``."""
    values: dict[int, float] = {}
    num_train = {r["run_id"]: r["num_train"] for r in runs}
    for run_id, epoch, steps, measured, seconds in _epochs(store, runs):
        spent = {
            "epochs": epoch,
            "examples": epoch * num_train[run_id],
            "steps": steps,
            "seconds": seconds,
        }[kind]
        if spent <= amount and measured is not None:
            values[run_id] = measured
    return values


def varying_settings(configs: list[dict[str, Any]]) -> list[str]:
    """The settings (``flat_settings``, all but the seed) that differ between these stored
    configs, sorted; an ``opt.NAME`` that some configs lack differs."""
    flat = [flat_settings(c) for c in configs]
    keys = sorted({k for c in flat for k in c} - {"seed"})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in flat}) > 1]


def arm_settings(config: dict[str, Any], varying: list[str]) -> dict[str, Any]:
    """The ``varying`` settings of one arm's config: those it has (an optimizer's hyperparameter
    it lacks is left out, not set to None)."""
    flat = flat_settings(config)
    return {k: flat.get(k) for k in varying if k in flat or not k.startswith("opt.")}


def compare(
    store: Store,
    sweep: str,
    *,
    by: str = "optimizer",
    target: float | None = None,
    at: tuple[str, float] | None = None,
) -> Comparison:
    """Compare the arms of ``sweep`` (see the module docstring).

    ``at = (kind, amount)``, kind one of epochs, examples, steps, seconds, adds each arm's
    validation accuracy at that equal budget: how the article's regimes compare at equal epochs,
    examples seen, updates or wall-clock.
    """
    runs = store.sweep_runs(sweep)
    pruned_runs = store.sweep_runs(sweep, statuses=("pruned",))
    if not runs:
        known = ", ".join(store.sweeps()) or "none"
        also = f" ({len(pruned_runs)} pruned)" if pruned_runs else ""
        raise StoreError(
            f"sweep {sweep!r}: no finished runs{also} in {store.path} (sweeps: {known})"
        )
    configs = [r["config"] for r in runs + pruned_runs]
    varying = varying_settings(configs)
    known_settings = sorted({k for c in configs for k in flat_settings(c)} - {"seed"})
    if by not in known_settings:
        raise StoreError(
            f"by {by!r}: not a setting of sweep {sweep!r}, whose arms differ in "
            + (", ".join(varying) or "nothing")
        )
    if target is None:
        stored = {c.get("target_accuracy") for c in configs}
        target = stored.pop() if len(stored) == 1 else None
        recomputed = None
    else:
        recomputed = _targets(store, runs, target)

    if at is not None and at[0] not in AT_KINDS:
        raise StoreError(f"at {at[0]}: expected one of {', '.join(AT_KINDS)}")
    at_values = _at_budget(store, runs, *at) if at is not None else None
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(arm_key(run["config"]), []).append(run)
    rows = [_arm_row(members, varying, recomputed, at_values) for members in groups.values()]
    stopped: dict[str, list[dict]] = {}
    for run in pruned_runs:
        stopped.setdefault(arm_key(run["config"]), []).append(run)
    pruned = [_arm_row(members, varying, None, None) for members in stopped.values()]
    choices, chosen_rows = _tune(rows, by)
    members_of = {row.label: members for row, members in zip(rows, groups.values(), strict=True)}
    pruning = store.sweep_pruning(sweep)
    decisions = _decisions(
        store,
        by,
        [(row, members_of[row.label]) for row in chosen_rows],
        (pruned, stopped),
        metric=pruning.metric if pruning else "val_accuracy",
    )
    paired = _paired(chosen_rows)
    return Comparison(
        sweep=sweep,
        target=target,
        at=at,
        by=by,
        varying=varying,
        rows=rows,
        choices=choices,
        paired=paired,
        profile=_profile(rows),
        pruned=pruned,
        decisions=decisions,
        edges=at_the_edge(
            by,
            [(row.label, row.arm) for row in chosen_rows],
            [row.arm for row in rows + pruned],
            store.sweep_ranges(sweep),
        ),
        pruning=pruning,
    )


NOT_APPLICABLE = "n/a"  # the value of a conditional setting on an arm that lacks it


def group_of(arm: dict[str, Any], by: str) -> Any:
    """The group an arm (its varying settings) tunes within: its value of ``by``; ``n/a`` for an
    optimizer's hyperparameter its optimizer lacks; ``all`` where ``by`` does not vary."""
    return arm.get(by, NOT_APPLICABLE if by.startswith("opt.") else "all")


def at_the_edge(
    by: str,
    chosen: list[tuple[str, dict[str, Any]]],
    tried: list[dict[str, Any]],
    ranges: Sequence[SearchedRange] = (),
) -> list[AtTheEdge]:
    """Each chosen arm's (label, settings) numeric settings at the end of the values its group
    (``by``) ``tried``, where it tried at least three: with fewer, every value is at an end.

    A setting drawn from a continuous range (``ranges``, as the store keeps them) may be the
    largest drawn and still sit well inside its range. Where the range's end lies further from
    it (on the range's scale) than the next value tried, the edge says so (``range_end``): the
    draws left that stretch unexplored, and more of them, not a wider range, would look there.

    Examples:
      >>> tried = [{"optimizer": "adam", "lr": lr, "init": "he"} for lr in (1e-4, 1e-3, 1e-2)]
      >>> [(e.setting, e.value, e.side) for e in at_the_edge("optimizer", [("c", tried[2])], tried)]
      [('lr', 0.01, 'largest')]
      >>> at_the_edge("optimizer", [("c", tried[1])], tried)  # in the middle
      []
      >>> log_range = [SearchedRange("adam", "lr", True, 1e-5, 1.0)]  # two decades past 1e-2
      >>> at_the_edge("optimizer", [("c", tried[2])], tried, log_range)[0].range_end
      1.0
      >>> near = [SearchedRange("adam", "lr", True, 1e-5, 2e-2)]  # a third of a decade past
      >>> print(at_the_edge("optimizer", [("c", tried[2])], tried, near)[0].range_end)
      None
    """
    found = []
    for label, chosen_arm in chosen:
        group = group_of(chosen_arm, by)
        peers = [arm for arm in tried if group_of(arm, by) == group]
        for setting, value in chosen_arm.items():
            if setting == by or not _is_number(value):
                continue
            values = sorted({arm[setting] for arm in peers if _is_number(arm.get(setting))})
            if len(values) < 3 or values[0] < value < values[-1]:
                continue
            side = "largest" if value == values[-1] else "smallest"
            inward = values[-2] if side == "largest" else values[1]
            searched = _range_of(ranges, setting, chosen_arm.get("optimizer"))
            end = _unexplored_end(searched, value, inward, side) if searched else None
            found.append(AtTheEdge(str(group), label, setting, value, side, len(values), end))
    return found


def _range_of(
    ranges: Sequence[SearchedRange], setting: str, optimizer: Any
) -> SearchedRange | None:
    """The range ``setting`` was drawn from for an arm of ``optimizer``: its table's, or the
    plan's shared one. An arm without an optimizer (it does not vary) takes the one there is."""
    for searched in ranges:
        if searched.setting == setting and (
            optimizer is None or searched.optimizer in ("", optimizer)
        ):
            return searched
    return None


def _unexplored_end(
    searched: SearchedRange, value: float, inward: float, side: str
) -> float | None:
    """The range's end on ``side`` where it lies further from ``value`` than ``inward`` (the
    next value tried) does, on the range's scale; None where ``value`` is at the end."""
    end = searched.high if side == "largest" else searched.low
    points = (end, value, inward)
    if searched.log and min(points) <= 0:
        return None  # values from a linear range of an earlier plan: no log scale to measure on
    end_at, value_at, inward_at = (math.log(p) if searched.log else p for p in points)
    # Signed toward the end: a range narrowed since has its end at or inside the value.
    beyond = end_at - value_at if side == "largest" else value_at - end_at
    return end if beyond > abs(value_at - inward_at) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decisions(
    store: Store,
    by: str,
    chosen: list[tuple[ArmRow, list[dict]]],
    pruned: tuple[list[ArmRow], dict[str, list[dict]]],
    *,
    metric: str,
) -> list[PruneDecision]:
    """Each pruned arm (with ``stopped``, their runs in the same order) against the chosen arm
    of its group, where the group has one, on the epoch ``metric`` its pruner judged."""
    rows, stopped = pruned
    kept = {str(group_of(row.arm, by)): (row, members) for row, members in chosen}
    found = []
    for row, members in zip(rows, stopped.values(), strict=True):
        group = str(group_of(row.arm, by))
        if group not in kept:
            continue
        if decision := _decision(store, group, ((row, members), kept[group]), metric):
            found.append(decision)
    return found


def _decision(
    store: Store,
    group: str,
    arms: tuple[tuple[ArmRow, list[dict]], tuple[ArmRow, list[dict]]],
    metric: str,
) -> PruneDecision | None:
    """A pruned arm against its group's chosen arm (each with its stored runs) at the last epoch
    every run of the pruned arm reached, on matched seeds. The lead is the chosen arm's
    advantage in ``metric``: higher validation accuracy, or lower validation cost."""
    (row, members), (kept_row, kept_members) = arms
    epoch = min(int(r["epochs"] or 0) for r in members)
    side = {r["run_id"]: (0, r["seed"]) for r in members}
    side.update({r["run_id"]: (1, r["seed"]) for r in kept_members})
    at_epoch: tuple[dict[int, float], dict[int, float]] = ({}, {})  # seed -> metric, per arm
    for run_id, at, value in store.epoch_rows(list(side), ("epoch", metric)):
        if at == epoch and value is not None and math.isfinite(value):
            arm, seed = side[run_id]
            at_epoch[arm][seed] = float(value)
    stopped, going = at_epoch
    seeds = sorted(set(stopped) & set(going))
    if not seeds:
        return None
    sense = -1.0 if metric == "val_cost" else 1.0
    differences = [sense * (going[s] - stopped[s]) for s in seeds]
    lead = statistics.fmean(differences)
    error = statistics.stdev(differences) / math.sqrt(len(seeds)) if len(seeds) > 1 else None
    return PruneDecision(
        group=group,
        pruned=row.label,
        kept=kept_row.label,
        epoch=epoch,
        metric=metric,
        seeds=len(seeds),
        lead=lead,
        standard_error=error,
        within_noise=None if error is None else lead < 2 * error,
    )


def _arm_row(
    members: list[dict],
    varying: list[str],
    recomputed: dict[int, tuple[int, int, float]] | None,
    at_values: dict[int, float] | None,
) -> ArmRow:
    """One arm's statistics over its seeds (``members``: its stored runs' summary rows)."""
    arm = arm_settings(members[0]["config"], varying)
    if recomputed is not None:
        to_target = [recomputed.get(r["run_id"]) for r in members]
    else:
        to_target = [
            (r["target_epoch"], r["target_step"], r["target_seconds"])
            if r["target_epoch"] is not None
            else None
            for r in members
        ]
    hits = [t for t in to_target if t is not None]
    return ArmRow(
        arm=arm,
        label=" · ".join(f"{k}={v}" for k, v in arm.items()) or "all runs",
        seeds=[r["seed"] for r in members],
        diverged=sum(r["status"] == "diverged" for r in members),
        best_val=Stat.of([r["best_val_accuracy"] for r in members]),
        final_val=Stat.of([r["val_accuracy"] for r in members]),
        final_test=Stat.of([r["test_accuracy"] for r in members]),
        test_at_best_val=Stat.of([r["test_at_best_val"] for r in members]),
        reached=len(hits),
        epochs_to_target=Stat.of([t[0] for t in hits]),
        steps_to_target=Stat.of([t[1] for t in hits]),
        seconds_to_target=Stat.of([t[2] for t in hits]),
        at_budget=None
        if at_values is None
        else Stat.of([at_values.get(r["run_id"]) for r in members]),
        per_seed_val={r["seed"]: r["best_val_accuracy"] or 0.0 for r in members},
        per_seed_test={r["seed"]: r["test_at_best_val"] or 0.0 for r in members},
    )


def _tune(rows: list[ArmRow], by: str) -> tuple[list[Choice], list[ArmRow]]:
    """Within each value of ``by``, the arm with the best mean best-validation accuracy.

    A diverged seed counts with the best validation accuracy it reached before diverging; an arm
    whose seeds all lack a validation split cannot be chosen by this protocol and is skipped.
    """
    groups: dict[str, list[ArmRow]] = {}
    for row in rows:
        groups.setdefault(str(group_of(row.arm, by)), []).append(row)
    choices, chosen = [], []
    for group, members in groups.items():
        scored = [m for m in members if m.best_val.mean is not None]
        if not scored:
            continue
        best = max(scored, key=lambda m: m.best_val.mean or 0.0)
        chosen.append(best)
        choices.append(
            Choice(
                group=group,
                chosen=best.label,
                best_val=best.best_val,
                test_at_best_val=best.test_at_best_val,
                candidates=len(members),
            )
        )
    return choices, chosen


def _paired(chosen: list[ArmRow]) -> list[Paired]:
    """Each chosen arm against the one with the best validation accuracy, on matched seeds."""
    if len(chosen) < 2:
        return []
    ranked = sorted(chosen, key=lambda r: r.best_val.mean or 0.0, reverse=True)
    leader, results = ranked[0], []
    for other in ranked[1:]:
        seeds = sorted(set(leader.per_seed_test) & set(other.per_seed_test))
        diffs = [leader.per_seed_test[s] - other.per_seed_test[s] for s in seeds]
        p = sign_flip_p_value(diffs)
        smallest = 2 / 2 ** len(seeds) if seeds else 1.0
        if not seeds:
            note = "no matched seeds"
        elif p <= 0.05:
            note = "significant at 0.05"
        elif smallest > 0.05:
            note = f"{len(seeds)} matched seeds cannot reach p <= 0.05 (smallest p {smallest:.3g})"
        else:
            note = "not significant at 0.05"
        results.append(
            Paired(
                a=leader.label,
                b=other.label,
                seeds=len(seeds),
                mean_difference=statistics.fmean(diffs) if diffs else 0.0,
                p_value=p,
                note=note,
            )
        )
    return results


def _profile(rows: list[ArmRow]) -> dict[str, list[float]]:
    """For each tau, the fraction of arms whose mean seconds to target (all seeds reaching it)
    are within tau times the fastest arm's; arms that miss the target never count."""
    times = [r.seconds_to_target.mean if r.reached == len(r.seeds) else None for r in rows]
    reached = [t for t in times if t is not None]
    if not reached:
        return {"tau": list(TAUS), "fraction": [0.0] * len(TAUS)}
    fastest = min(reached)
    fractions = [
        sum(t is not None and t <= tau * fastest for t in times) / len(rows) for tau in TAUS
    ]
    return {"tau": list(TAUS), "fraction": fractions}


STAT_COLUMNS = (
    "best_val",
    "final_val",
    "final_test",
    "test_at_best_val",
    "epochs_to_target",
    "steps_to_target",
    "seconds_to_target",
)


def arm_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One flat row per arm: its label, its value of each varying key, counts, and the mean,
    std, min and max of each statistic (``costhill compare --csv``)."""
    rows = []
    for row in comparison.rows:
        flat: dict[str, Any] = {"arm": row.label}
        flat.update({k: row.arm.get(k) for k in comparison.varying})
        flat.update(seeds=len(row.seeds), diverged=row.diverged, reached=row.reached)
        for name in STAT_COLUMNS:
            stat = getattr(row, name)
            flat.update({f"{name}_{p}": getattr(stat, p) for p in ("mean", "std", "min", "max")})
        rows.append(flat)
    return rows
