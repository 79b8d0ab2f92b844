"""Sweeps: plans (TOML files of axes, budget, seeds and target) and the runner that trains them
into the store, in this process, in worker processes or on Ray (``executors``).

Names are imported on first use: reading a plan's name (``costhill compare PLAN``) must not pay
for importing the engine and JAX.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "SweepReport": "executors",
    "check_ray_head": "executors",
    "cohort_groups": "executors",
    "Plan": "plans",
    "bundled_plans": "plans",
    "load_plan": "plans",
    "parse_plan": "plans",
    "parse_set": "plans",
    "plan_name": "plans",
    "resolve_budget": "runner",
    "run_plan": "runner",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .executors import SweepReport as SweepReport
    from .executors import check_ray_head as check_ray_head
    from .executors import cohort_groups as cohort_groups
    from .plans import Plan as Plan
    from .plans import bundled_plans as bundled_plans
    from .plans import load_plan as load_plan
    from .plans import parse_plan as parse_plan
    from .plans import parse_set as parse_set
    from .plans import plan_name as plan_name
    from .runner import resolve_budget as resolve_budget
    from .runner import run_plan as run_plan


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'costhill.sweeps' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
