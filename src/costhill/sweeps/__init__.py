"""Sweeps: plans (TOML files of axes, budget, seeds and target) and the runner that trains them
into the store, in this process, in worker processes or on Ray (``executors``)."""

from .executors import SweepReport, check_ray_head, cohort_groups
from .plans import Plan, bundled_plans, load_plan, parse_plan, parse_set, plan_name
from .runner import resolve_budget, run_plan

__all__ = [
    "Plan",
    "SweepReport",
    "bundled_plans",
    "check_ray_head",
    "cohort_groups",
    "load_plan",
    "parse_plan",
    "parse_set",
    "plan_name",
    "resolve_budget",
    "run_plan",
]
