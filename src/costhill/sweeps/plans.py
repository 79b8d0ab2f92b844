"""Sweep plans: TOML files naming axes to vary, settings to fix, a budget, seeds and a target.

    name = "lr-demo"
    dataset = "fashion-mnist"
    epochs = 5                 # the budget: epochs, or examples, or steps, or seconds
    target = 0.85              # validation accuracy whose time-to-reach is recorded
    seeds = [0, 1, 2]

    [axes]
    init = ["glorot_uniform", "he_normal"]
    batch_size = [64]

    [[axes.optimizer]]
    name = "sgd"
    lr = {log = [1e-3, 1e0], num = 7}   # 7 values evenly spaced in log space

    [[axes.optimizer]]
    name = "adam"
    lr = [1e-4, 3e-4, 1e-3]

``search = "random"`` with ``trials = N`` draws N points instead, where a ``{log = [a, b]}`` or
``{range = [a, b]}`` without ``num`` is a continuous range. ``search = "tpe"`` asks Optuna's TPE
sampler for the N trials, ``batch`` at a time (``[search]``; ``sweeps.tuning``), and
``prune = "asha"``, ``"hyperband"``, ``"median"`` or ``"none"`` (or a ``[prune]`` table with
``rule`` and its options) stops hopeless trials early, judged on the mean validation accuracy
of their seeds (or, with ``metric = "val_cost"``, on their validation cost). Every other
top-level key is a fixed ``RunConfig`` setting. Unknown keys and bad values fail before anything
trains, naming the file, the line and the key. Bundled plans live in ``costhill/plans/`` and run
by name.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FIELDS, RunConfig, from_dict
from ..errors import ConfigError
from ..specs import parse_set as parse_set
from ..store import SearchedRange

PLAN_KEYS = {
    "name",
    "description",
    "search",
    "prune",
    "trials",
    "target",
    "seeds",
    "axes",
    "epochs",
    "examples",
    "steps",
    "seconds",
    "stop_at_target",
}
BUDGET_KEYS = ("epochs", "examples", "steps", "seconds")
# Run settings a plan may fix or vary, beyond the budget and target it sets itself.
SETTING_KEYS = set(FIELDS) - {"epochs", "target_accuracy", "seed", "stop_at_target"}
OPTIMIZER_AXIS_KEYS = {"name", "lr"}


@dataclass(frozen=True)
class Budget:
    """How long each run trains: whole epochs, or epochs enough for a count of examples or
    steps, or as many epochs as fit in a number of training seconds."""

    kind: str
    amount: float

    def epochs_for(self, num_train: int, steps_per_epoch: int) -> int:
        if self.kind == "epochs":
            return int(self.amount)
        if self.kind == "examples":
            return max(1, math.ceil(self.amount / num_train))
        if self.kind == "steps":
            return max(1, math.ceil(self.amount / steps_per_epoch))
        raise ValueError("a seconds budget has no fixed epoch count")


SAMPLER_OPTIONS = {"tpe": {"startup": 10, "seed": 0, "batch": 1}}
PRUNE_OPTIONS: dict[str, dict[str, int]] = {
    "none": {},
    "asha": {"min_epochs": 1, "reduction": 3},
    "hyperband": {"min_epochs": 1, "reduction": 3},
    "median": {"min_epochs": 1, "startup": 5},
}
# The tables an override can reach into (`--set search.seed=3`): each one's kind key, and the
# kind a plan that leaves the table out has.
TABLE_NAMES = {"search": ("sampler", "grid"), "prune": ("rule", "none")}
# The least a sampler or pruner option may be (any other: 0). A batch of no trials asks
# nothing, epoch 0 is before any training, and successive halving keeps one trial in
# ``reduction`` at each rung: Optuna refuses a reduction below 2.
OPTION_MINIMUMS = {"batch": 1, "min_epochs": 1, "reduction": 2}
# What a pruner judges a trial's seeds on after each epoch (``[prune] metric``).
PRUNE_METRICS = ("val_accuracy", "val_cost")


@dataclass(frozen=True)
class Search:
    """How a plan's points are chosen: every one (grid), drawn (random), or asked of a sampler
    (tpe) one trial at a time, over ``space``; with ``prune``, judged after every epoch."""

    kind: str = "grid"
    trials: int = 0
    sampler: dict[str, int] = field(default_factory=dict)
    prune: str = "none"
    prune_options: dict[str, int] = field(default_factory=dict)
    prune_metric: str = "val_accuracy"
    # For tpe: the axes shared by every optimizer, then each [[axes.optimizer]] arm's own.
    axes: dict[str, Any] = field(default_factory=dict)
    arms: tuple[dict[str, Any], ...] = ()
    seeds: tuple[int, ...] = (0,)
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def first_point(self) -> dict[str, Any]:
        """A point of the space (each axis's first or lowest value): what is checked up front."""
        arm = self.arms[0] if self.arms else {}
        return {
            **{k: _lowest(v) for k, v in self.axes.items()},
            **arm.get("fixed", {}),
            **{k: _lowest(v) for k, v in arm.items() if k != "fixed"},
        }

    def configs_for(self, point: Mapping[str, Any]) -> list[RunConfig]:
        """The configs of one trial: ``point`` (a value for every axis) at every seed."""
        return _configs(
            [dict(point)], self.settings, list(self.seeds), lines=_Lines("", self.source)
        )


@dataclass(frozen=True)
class Plan:
    name: str
    source: str
    configs: tuple[RunConfig, ...]
    budget: Budget
    target: float | None
    description: str = ""
    axes: tuple[str, ...] = field(default=())
    search: Search = field(default_factory=Search)
    # The continuous ranges a random or tpe search draws from (none for a grid), for the store.
    ranges: tuple[SearchedRange, ...] = ()

    def __len__(self) -> int:
        """Runs planned: every config, or for a tpe search its trials at every seed."""
        if self.search.kind == "tpe":  # a study per optimizer (sweeps.tuning.studies)
            studies = max(1, len(self.search.arms))
            return studies * self.search.trials * len(self.search.seeds)
        return len(self.configs)


class _Lines:
    """Finds the line a key was written on, so errors can point at it (tomllib does not say)."""

    def __init__(self, text: str, source: str, overridden: frozenset[str] = frozenset()) -> None:
        self.lines = text.splitlines()
        self.source = source
        # Keys whose value came from --set (top-level, or ``search.seed`` in a table): the
        # file's line for them is not the culprit.
        self.overridden = overridden

    def of(self, key: str, *, after: int = 0) -> int | None:
        pattern = re.compile(rf"^\s*(\[+\s*)?([\w.]*\.)?{re.escape(key)}\s*(=|\])")
        for number, line in enumerate(self.lines[after:], start=after + 1):
            if pattern.match(line):
                return number
        return None

    def section(self, header: str, index: int) -> int:
        """The line of the ``index``-th ``[[header]]`` table (0 if there is none)."""
        return self._header(f"[[{header}]]", index)

    def table(self, name: str) -> int:
        """The line of the ``[name]`` table's header (0 if there is none)."""
        return self._header(f"[{name}]", 0)

    def _header(self, header: str, index: int) -> int:
        found = [n for n, line in enumerate(self.lines, start=1) if _bare(line) == header]
        return found[index] if index < len(found) else 0

    def error(
        self, key: str, message: str, *, after: int = 0, table: str | None = None
    ) -> ConfigError:
        """The error of ``key`` (an option of the ``[table]`` table, if given) at its line."""
        if table is not None:
            if f"{table}.{key}" in self.overridden:
                return ConfigError(f"overrides {table}.{key}: {message}")
            after = after or self.table(table)  # [prune]'s startup, not [search]'s
        if key in self.overridden and not after:
            return ConfigError(f"overrides {key}: {message}")
        *tables, name = key.split(".")
        if tables and not after:  # axes.batch_size: the one under [axes], not the top-level key
            after = self.table(".".join(tables))
        line = self.of(name, after=after) or self.of(name)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: {key}: {message}")


def _values(
    spec: Any, *, key: str, lines: _Lines, random: bool, after: int = 0
) -> list[Any] | dict[str, Any]:
    """An axis's values: a list, a log/linear grid, or (random search) a continuous range."""
    if after:
        lines = _Anchored(lines, after)
    if isinstance(spec, list):
        if not spec:
            raise lines.error(key, "an empty list of values")
        return spec
    if isinstance(spec, dict):
        return _range_values(spec, key=key, lines=lines, random=random)
    return [spec]


def _range_values(
    spec: dict[str, Any], *, key: str, lines: _Lines, random: bool
) -> list[Any] | dict[str, Any]:
    """``{log = [low, high], num = N}`` or ``{range = ...}``: a grid, or without ``num`` (random
    search only) the continuous range itself."""
    unknown = set(spec) - {"log", "range", "num", "int"}
    kinds = [k for k in ("log", "range") if k in spec]
    if unknown or len(kinds) != 1:
        raise lines.error(
            key,
            "expected a list, {log = [low, high], num = N} or {range = [low, high], num = N} "
            "(with int = true for whole numbers)",
        )
    whole = spec.get("int", False)
    if not isinstance(whole, bool):
        raise lines.error(key, f"int = {whole!r}: must be true or false")
    kind = kinds[0]
    low_high = spec[kind]
    if (
        not isinstance(low_high, list)
        or len(low_high) != 2
        or not all(isinstance(v, int | float) for v in low_high)
    ):
        raise lines.error(key, f"{kind} must be [low, high]")
    low, high = (float(v) for v in low_high)
    if not low < high:
        raise lines.error(key, f"{kind} = [{low:g}, {high:g}]: low must be below high")
    if kind == "log" and low <= 0:
        raise lines.error(key, f"log = [{low:g}, {high:g}]: a log range must be above 0")
    if whole and math.ceil(low) > math.floor(high):
        raise lines.error(key, f"{kind} = [{low:g}, {high:g}]: holds no whole number (int = true)")
    if "num" not in spec:
        if not random:
            raise lines.error(key, f"a grid needs num = N beside {kind}")
        return {"kind": kind, "low": low, "high": high, "int": whole}
    num = spec["num"]
    if not isinstance(num, int) or num < 1:
        raise lines.error(key, "num must be a positive integer")
    grid = np.geomspace(low, high, num) if kind == "log" else np.linspace(low, high, num)
    values = [float(f"{v:.6g}") for v in grid]
    return [int(round(v)) for v in values] if whole else values


def whole_within(value: float, values: dict[str, Any]) -> int:
    """The whole number nearest ``value`` inside the range ``values`` (low and high)."""
    return min(max(round(value), math.ceil(values["low"])), math.floor(values["high"]))


def _bare(line: str) -> str:
    return line.split("#")[0].replace(" ", "").strip()  # a header as written, comment aside


class _Anchored(_Lines):
    """Line lookups that start below a given line (inside one ``[[axes.optimizer]]`` table)."""

    def __init__(self, lines: _Lines, after: int) -> None:
        self.lines, self.source, self.after = lines.lines, lines.source, after
        self.overridden = lines.overridden

    def error(
        self, key: str, message: str, *, after: int = 0, table: str | None = None
    ) -> ConfigError:
        return super().error(key, message, after=after or self.after, table=table)


def _draw(values: list[Any] | dict[str, Any], rng: np.random.Generator) -> Any:
    if isinstance(values, list):
        return values[int(rng.integers(len(values)))]
    low, high = values["low"], values["high"]
    value = (
        math.exp(rng.uniform(math.log(low), math.log(high)))
        if values["kind"] == "log"
        else rng.uniform(low, high)
    )
    return whole_within(value, values) if values["int"] else float(f"{value:.6g}")


def _points(
    axes: dict[str, list | dict], *, random: bool, trials: int, rng: np.random.Generator
) -> Iterator[dict[str, Any]]:
    names = list(axes)
    if not random:
        for combo in itertools.product(*(axes[n] for n in names)):  # type: ignore[arg-type]
            yield dict(zip(names, combo, strict=True))
        return
    for _ in range(trials):
        yield {n: _draw(axes[n], rng) for n in names}


def parse_plan(text: str, *, source: str, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Parse and fully validate a plan; ``overrides`` (``--set``) replace top-level settings."""
    lines = _Lines(text, source, frozenset(overrides or {}))
    raw = _read(text, source=source, overrides=overrides or {}, lines=lines)
    budget = _budget(raw, lines=lines)
    target = raw.get("target")
    if target is not None and not (isinstance(target, int | float) and 0 < target <= 1):
        raise lines.error("target", "must be an accuracy in (0, 1]")
    seeds = _seeds(raw, lines=lines)
    search = _search(raw, lines=lines)
    random = search.kind != "grid"
    axes, optimizer_arms = _axes(raw, lines=lines, random=random)
    run_settings = {
        **{k: v for k, v in raw.items() if k in SETTING_KEYS},
        "epochs": int(budget.amount) if budget.kind == "epochs" else 1,
        "target_accuracy": target,
        "stop_at_target": bool(raw.get("stop_at_target", False)),
    }
    points: list[dict[str, Any]] = []
    if search.kind == "tpe":
        search = _tuning(search, axes, optimizer_arms, seeds, run_settings, budget, lines=lines)
    else:
        rng = np.random.default_rng(0)
        for arm in optimizer_arms or [{}]:
            arm_axes = {**axes, **{k: v for k, v in arm.items() if k != "fixed"}}
            for point in _points(arm_axes, random=random, trials=search.trials, rng=rng):
                points.append({**arm.get("fixed", {}), **point})
    return Plan(
        name=str(raw.get("name") or Path(source).stem),
        source=source,
        search=search,
        configs=tuple(_configs(points, run_settings, seeds, lines=lines)),
        budget=budget,
        target=target,
        description=str(raw.get("description", "")),
        axes=tuple(
            sorted(
                {*axes, *(k for arm in optimizer_arms for k in arm)} - {"fixed"}
                | ({"optimizer"} if optimizer_arms else set())
            )
        ),
        ranges=_searched_ranges(axes, optimizer_arms),
    )


def _searched_ranges(
    axes: dict[str, list | dict], optimizer_arms: list[dict[str, Any]]
) -> tuple[SearchedRange, ...]:
    """Every axis given as a continuous range: the plan's shared ones, then each optimizer's."""
    owned = [("", axes)] + [(arm["fixed"]["optimizer"], arm) for arm in optimizer_arms]
    return tuple(
        SearchedRange(optimizer, key, values["kind"] == "log", values["low"], values["high"])
        for optimizer, table in owned
        for key, values in table.items()
        if key != "fixed" and isinstance(values, dict)
    )


def _read(text: str, *, source: str, overrides: Mapping[str, Any], lines: _Lines) -> dict[str, Any]:
    """The plan's TOML with the overrides applied, every top-level key known."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    valid = ", ".join(sorted(PLAN_KEYS | SETTING_KEYS))
    # A whole key first, then a table's option: `search=random` would otherwise drop a
    # `search.seed` given before it, rather than be refused for taking none.
    for key, value in sorted(overrides.items(), key=lambda item: "." in item[0]):
        table, _, option = key.partition(".")
        if option and table in TABLE_NAMES:
            raw[table] = {**_as_table(raw.get(table), table), option: value}
        elif key not in PLAN_KEYS | SETTING_KEYS:
            options = ", ".join(f"{t}.OPTION" for t in TABLE_NAMES)
            raise ConfigError(f"overrides {key}: unknown plan key; valid: {valid}, {options}")
        else:
            raw[key] = value
    unknown = sorted(set(raw) - PLAN_KEYS - SETTING_KEYS)
    if unknown:
        raise lines.error(unknown[0], "unknown key; valid top-level keys: " + valid)
    return raw


def _as_table(value: Any, table: str) -> dict[str, Any]:
    """``search = "tpe"`` as ``[search]`` with ``sampler = "tpe"`` (``prune`` likewise with its
    ``rule``), so that an override can add an option to a plan that names only the kind; a
    table as it is."""
    if isinstance(value, dict):
        return value
    name, default = TABLE_NAMES[table]
    return {name: default if value is None else value}


def _budget(raw: dict[str, Any], *, lines: _Lines) -> Budget:
    budgets = [k for k in BUDGET_KEYS if k in raw]
    if len(budgets) != 1:
        raise ConfigError(
            f"{lines.source}: give exactly one budget of {', '.join(BUDGET_KEYS)} "
            f"(found {', '.join(budgets) or 'none'})"
        )
    amount = raw[budgets[0]]
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise lines.error(budgets[0], "must be a positive number")
    if budgets[0] == "epochs" and not isinstance(amount, int):
        raise lines.error("epochs", "must be a whole number")
    return Budget(budgets[0], float(amount))


def _seeds(raw: dict[str, Any], *, lines: _Lines) -> list[int]:
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    if not (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise lines.error("seeds", "must be a list of non-negative integers, or a count")
    return seeds


def _search(raw: dict[str, Any], *, lines: _Lines) -> Search:
    """The plan's search: its kind, trials, sampler options and pruning rule, all checked."""
    search = raw.get("search", "grid")
    sampler: dict[str, Any] = {}
    key = "search"
    if isinstance(search, dict):  # [search] with sampler = "tpe" and its options
        sampler = {k: v for k, v in search.items() if k != "sampler"}
        search, key = search.get("sampler", "tpe"), "sampler"
    if not isinstance(search, str) or search not in ("grid", "random", "tpe"):
        raise lines.error(
            key, f"{search!r}: unknown {key}; valid: grid, random, tpe", table=_table(key, "search")
        )
    trials = raw.get("trials", 0)
    if search != "grid" and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise lines.error("trials", f"{search} search needs trials = N (a positive integer)")
    if sampler and search != "tpe":
        raise lines.error(next(iter(sampler)), f"{search} search takes no options", table="search")
    options = _options(
        sampler, SAMPLER_OPTIONS.get(search, {}), key="search", table="search", lines=lines
    )
    spec = raw.get("prune", "none")
    # `--set prune=none` reads as None (no value), which means what "none" does: no pruning.
    prune, prune_options, metric = _prune("none" if spec is None else spec, lines=lines)
    if prune != "none" and search != "tpe":
        raise lines.error("prune", "pruning needs search = 'tpe' (it judges trials as they train)")
    return Search(search, trials, options, prune, prune_options, metric, source=lines.source)


def _prune(spec: Any, *, lines: _Lines) -> tuple[str, dict[str, int], str]:
    """``prune = "asha"``, or ``[prune]`` with ``rule = "asha"``, the rule's options and the
    ``metric`` it judges on."""
    given: dict[str, Any] = {}
    key = "prune"
    if isinstance(spec, dict):
        if "rule" not in spec:
            raise lines.error("prune", f"[prune] needs rule = one of: {', '.join(PRUNE_OPTIONS)}")
        given = {k: v for k, v in spec.items() if k != "rule"}
        spec, key = spec["rule"], "rule"
    if not isinstance(spec, str) or spec not in PRUNE_OPTIONS:  # a table is not a rule's name
        valid = ", ".join(PRUNE_OPTIONS)
        raise lines.error(
            key, f"{spec!r}: unknown rule; valid: {valid}", table=_table(key, "prune")
        )
    metric = PRUNE_METRICS[0]
    if spec != "none" and "metric" in given:  # "none" judges nothing: _options refuses it there
        metric = given.pop("metric")
        if metric not in PRUNE_METRICS:
            valid = ", ".join(PRUNE_METRICS)
            message = f"prune {spec}: {metric!r}: unknown metric; valid: {valid}"
            raise lines.error("metric", message, table="prune")
    options = _options(given, PRUNE_OPTIONS[spec], key=f"prune {spec}", table="prune", lines=lines)
    return spec, options, metric


def _table(key: str, table: str) -> str | None:
    """``table`` where ``key`` is one of its options (``sampler``, ``rule``), else None: the
    plan's top-level ``search`` or ``prune`` itself."""
    return table if key != table else None


def _options(
    given: dict[str, Any], defaults: dict[str, int], *, key: str, table: str, lines: _Lines
) -> dict[str, int]:
    """``defaults`` updated by ``given``, whose keys must be among them, each a whole number
    of at least its ``OPTION_MINIMUMS``."""
    for option, value in given.items():
        if option not in defaults:
            valid = ", ".join(defaults) or "none"
            raise lines.error(
                option, f"{key} has no option {option!r}; valid: {valid}", table=table
            )
        least = OPTION_MINIMUMS.get(option, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise lines.error(
                option,
                f"{key}: {option} must be a whole number, {least} or more (got {value!r})",
                table=table,
            )
    return {**defaults, **given}


def _tuning(
    search: Search,
    axes: dict[str, list | dict],
    arms: list[dict[str, Any]],
    seeds: list[int],
    settings: dict[str, Any],
    budget: Budget,
    *,
    lines: _Lines,
) -> Search:
    """A tpe search with its space and what makes each trial's configs, checked up front."""
    if budget.kind != "epochs":
        raise lines.error(
            budget.kind,
            "a tpe search needs an epochs budget: it tells its sampler and pruner each trial "
            "epoch by epoch (a grid or random search takes this budget)",
        )
    if settings.get("validation") == 0:
        raise lines.error("validation", "a tpe search judges trials on validation: it cannot be 0")
    if not axes and not arms:
        raise lines.error("search", "a tpe search needs axes to search")
    _check_something_to_search(axes, arms, lines=lines)
    first_judged = search.prune_options.get("min_epochs", 0)
    if first_judged >= budget.amount:
        # A trial is stopped after an epoch it was judged at: the last epoch stops nothing.
        raise lines.error(
            "min_epochs" if lines.of("min_epochs") else "prune",
            f"prune {search.prune} judges trials from epoch {first_judged}, but the plan trains "
            f"{budget.amount:g} epoch{'' if budget.amount == 1 else 's'}: the first judged epoch "
            "must come before the last",
        )
    search = dataclasses.replace(
        search, axes=axes, arms=tuple(arms), seeds=tuple(seeds), settings=settings
    )
    # One point, checked now: a bad fixed setting fails before anything trains.
    _configs([search.first_point()], settings, seeds[:1], lines=lines)
    return search


def _check_something_to_search(
    axes: dict[str, list | dict], arms: list[dict[str, Any]], *, lines: _Lines
) -> None:
    """Each study's space must hold more than one point, or its every trial is one config."""
    for index, arm in enumerate(arms or [{}]):
        space = {**axes, **{k: v for k, v in arm.items() if k != "fixed"}}
        if any(not isinstance(v, list) or len(v) > 1 for v in space.values()):
            continue
        fixed = ", ".join(space) or "none"
        message = (
            f"nothing to search: every axis ({fixed}) has one value, so every trial would "
            "train the same config; give one a range ({log = [low, high]}) or choices"
        )
        if not arm:
            raise lines.error("axes", message)
        start = lines.section("axes.optimizer", index)
        raise lines.error("name", f"{arm['fixed']['optimizer']}'s study: {message}", after=start)


def _lowest(values: list[Any] | dict[str, Any]) -> Any:
    if isinstance(values, list):
        return values[0]
    return whole_within(values["low"], values) if values["int"] else values["low"]


def _axes(
    raw: dict[str, Any], *, lines: _Lines, random: bool
) -> tuple[dict[str, list | dict], list[dict[str, Any]]]:
    """The plan's setting axes, and its ``[[axes.optimizer]]`` arms."""
    axes_raw = raw.get("axes", {})
    if not isinstance(axes_raw, dict):
        raise lines.error("axes", "must be a table")
    axes: dict[str, list | dict] = {}
    optimizer_arms: list[dict[str, Any]] = []
    for key, spec in axes_raw.items():
        if key == "optimizer":
            optimizer_arms = _optimizer_arms(spec, lines=lines, random=random)
        elif key in SETTING_KEYS:
            axes[key] = _values(spec, key=f"axes.{key}", lines=lines, random=random)
        else:
            raise lines.error(
                f"axes.{key}",
                "unknown axis; axes may be " + ", ".join(sorted(SETTING_KEYS | {"optimizer"})),
            )
    return axes, optimizer_arms


def _configs(
    points: list[dict[str, Any]], run_settings: dict[str, Any], seeds: list[int], *, lines: _Lines
) -> list[RunConfig]:
    """Every point at every seed, checked, in plan order, each config once."""
    configs: list[RunConfig] = []
    seen: set[str] = set()
    for point in points:
        opt = {k.removeprefix("opt."): v for k, v in point.items() if k.startswith("opt.")}
        values = {**run_settings, **{k: v for k, v in point.items() if not k.startswith("opt.")}}
        fixed = values.get("opt", {})
        if opt and isinstance(fixed, Mapping):  # anything else fails in from_dict, named
            values["opt"] = {**fixed, **opt}
        if isinstance(values.get("batch_size"), str):
            values["batch_size"] = values["batch_size"].lower()
        for seed in seeds:
            config = _config(values | {"seed": seed}, lines=lines, point=point)
            if config.config_hash() not in seen:  # a grid may list a point twice
                seen.add(config.config_hash())
                configs.append(config)
    return configs


def _optimizer_arms(spec: Any, *, lines: _Lines, random: bool) -> list[dict[str, Any]]:
    """Each ``[[axes.optimizer]]`` table: its name fixed, its lr and hyperparameters as axes."""
    from ..optimizers import OPTIMIZERS, hyperparameters

    tables = spec if isinstance(spec, list) else [spec]
    arms = []
    for index, table in enumerate(tables):
        start = lines.section("axes.optimizer", index)
        if isinstance(table, str):
            table = {"name": table}
        if not isinstance(table, dict) or "name" not in table:
            raise lines.error(
                "axes.optimizer", 'each [[axes.optimizer]] needs name = "..."', after=start - 1
            )
        name = table["name"]
        if not isinstance(name, str) or name not in OPTIMIZERS:
            known = ", ".join(sorted(OPTIMIZERS))
            raise lines.error("name", f"unknown optimizer {name!r}; known: {known}", after=start)
        valid = hyperparameters(name)
        arm: dict[str, Any] = {"fixed": {"optimizer": name}}
        for key, value in table.items():
            if key == "name":
                continue
            if key == "lr":
                arm["lr"] = _values(value, key="lr", lines=lines, random=random, after=start)
            elif key in valid:
                arm[f"opt.{key}"] = _values(value, key=key, lines=lines, random=random, after=start)
            else:
                listed = ", ".join(valid)
                raise lines.error(
                    key,
                    f"{name} has no hyperparameter {key!r}; its hyperparameters: lr, {listed}",
                    after=start,
                )
        arms.append(arm)
    return arms


def _config(values: dict[str, Any], *, lines: _Lines, point: dict[str, Any]) -> RunConfig:
    from ..engine import check

    try:
        config = from_dict(values, source=lines.source)
        check(config)
    except ConfigError as err:
        message = str(err).removeprefix(f"{lines.source}: ")
        axis = next((k for k in point if k.split(".")[-1] in message), None)
        if axis is not None and axis != "lr" and not axis.startswith("opt."):
            raise lines.error(f"axes.{axis}", message) from None  # a setting's axis, in [axes]
        culprit = axis or next((k for k in values if k in message), "axes")
        raise lines.error(culprit.split(".")[-1], message) from None
    return config


def bundled_plans() -> list[str]:
    folder = resources.files("costhill") / "plans"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _plan_text(name_or_path: str) -> tuple[str, str]:
    """The text of a plan file, or of a bundled plan by name, and how errors name its source."""
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(), str(path)
    bundled = resources.files("costhill") / "plans" / f"{name_or_path}.toml"
    if bundled.is_file():
        return bundled.read_text(), f"plan {name_or_path}"
    raise ConfigError(
        f"{name_or_path}: no such plan file, and no bundled plan of that name "
        f"(bundled: {', '.join(bundled_plans())})"
    )


def load_plan(name_or_path: str, *, overrides: Mapping[str, Any] | None = None) -> Plan:
    """A plan from a file path, or a bundled plan by name."""
    text, source = _plan_text(name_or_path)
    return parse_plan(text, source=source, overrides=overrides)


def plan_name(name_or_path: str) -> str:
    """The name a plan's sweep is stored under, read without checking the plan's configs (so
    that naming a sweep by its plan imports no engine)."""
    text, source = _plan_text(name_or_path)
    try:
        name = tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from None
    return str(name or Path(name_or_path).stem)
