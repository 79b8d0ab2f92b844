"""``costhill compare``: a sweep's arms over their seeds, tuned on validation, reported on test."""

from __future__ import annotations

import os
from typing import Any

import click

from .console import make_console
from .options import STORE_OPTION


def sweep_name_of(plan_or_name: str | None, sweep_name: str | None) -> str:
    """The sweep to compare: ``--sweep``'s, or the name of PLAN's sweep. A PLAN that is no plan
    file nor bundled plan, nor looks like a path, is taken for the sweep's own name, as `sweep`
    printed it (``sweep my-plan.toml`` stores sweep ``my-plan``); the store says if it has none."""
    from ..errors import ConfigError
    from ..sweeps.plans import plan_name

    if sweep_name:
        return sweep_name
    if plan_or_name is None:
        raise click.UsageError("name a PLAN or --sweep NAME")
    try:
        return plan_name(plan_or_name)
    except ConfigError:
        if plan_or_name.endswith(".toml") or "/" in plan_or_name or os.sep in plan_or_name:
            raise  # a plan file that is not there
        return plan_or_name


@click.command()
@click.argument("plan", required=False)
@click.option("--sweep", "sweep_name", help="The sweep's name (instead of its PLAN).")
@STORE_OPTION
@click.option(
    "--by",
    default="optimizer",
    show_default=True,
    help="The axis to tune within: each of its values gets its best arm.",
)
@click.option(
    "--target",
    type=click.FloatRange(0, 1, min_open=True),
    help="Recompute time-to-target for this accuracy (above 0, at most 1).",
)
@click.option(
    "--at",
    "at_budget",
    metavar="KIND=AMOUNT",
    help="Also show validation accuracy at an equal budget: epochs=N, examples=N, steps=N "
    "or seconds=S.",
)
@click.option("--json", "as_json", is_flag=True, help="The whole comparison as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per arm.")
@click.option(
    "--importance",
    is_flag=True,
    help="Also each varying setting's importance (Optuna's fANOVA; costhill[importance]).",
)
def compare(
    plan: str | None,
    sweep_name: str | None,
    store_path: str,
    by: str,
    target: float | None,
    at_budget: str | None,
    as_json: bool,
    as_csv: bool,
    importance: bool,
) -> None:
    """Compare the arms of a sweep over their seeds, tuned on validation, reported on test.

    PLAN is a plan file, a bundled plan, or the name of a sweep in the store.

    \b
    Example:
        costhill compare optimizers
        costhill compare --sweep lr-demo --by init --target 0.85
        costhill compare --sweep optimizers-tuned --importance
        costhill compare optimizers --csv > arms.csv
        costhill compare regimes --by batch_size --at examples=300000
    """
    from ..results.compare import compare as run_compare
    from ..specs import parse_budget
    from ..store import Store

    if as_csv and importance:
        raise click.UsageError("--importance: the CSV has one row an arm; --json carries both")
    name = sweep_name_of(plan, sweep_name)
    at = parse_budget(at_budget) if at_budget else None
    with Store(store_path, read_only=True) as store:
        result = run_compare(store, name, by=by, at=at, target=target)
        shares, within = None, {}
        if importance:
            from ..results.studies import conditional_importance
            from ..results.studies import importance as param_importance

            shares = param_importance(store, name)
            within = conditional_importance(store, name)
    if as_json:
        import json

        whole = result.to_dict()
        if shares is not None:
            whole["importance"] = {"overall": shares, "within_optimizer": within}
        click.echo(json.dumps(whole, indent=1))
        return
    if as_csv:
        from ..results.compare import arm_rows
        from ..results.exports import as_text

        click.echo(as_text(arm_rows(result), "csv"), nl=False)
        return
    _print_comparison(name, result, by)
    if shares is not None:
        console = make_console()
        console.print(
            f"importance (fANOVA over the {len(result.rows)} arms that ran their course: share "
            "of the variance of mean best val acc): " + _shares(shares)
        )
        for optimizer, among in within.items():
            console.print(f"  within optimizer={optimizer}: " + _shares(among))


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{key} {share:.2f}" for key, share in shares.items())


def _print_comparison(name: str, result: Any, by: str) -> None:
    from rich.table import Table

    console = make_console()
    target = "no target" if result.target is None else f"target {result.target:g}"
    table = Table(title=f"sweep {name} · {len(result.rows)} arms · {target}")
    for column in (
        "arm",
        "seeds",
        "best val acc",
        "final val acc",
        "final test acc",
        "epochs to target",
        "seconds to target",
        "diverged",
        *([f"val acc at {result.at[0]}={result.at[1]:g}"] if result.at else []),
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for row in sorted(result.rows, key=lambda r: -(r.best_val.mean or 0.0)):
        table.add_row(
            row.label,
            str(len(row.seeds)),
            row.best_val.text(),
            row.final_val.text(),
            row.final_test.text(),
            f"{row.epochs_to_target.text(1)} ({row.reached}/{len(row.seeds)})",
            row.seconds_to_target.text(2),
            str(row.diverged),
            *([row.at_budget.text()] if row.at_budget is not None else []),
        )
    console.print(table)
    tuned = Table(title=f"tuned on validation within each {by} (test reported, never used)")
    for column in ("group", "chosen arm", "best val acc", "test acc at best val", "candidates"):
        tuned.add_column(column)
    for choice in result.choices:
        tuned.add_row(
            choice.group,
            choice.chosen,
            choice.best_val.text(),
            choice.test_at_best_val.text(),
            str(choice.candidates),
        )
    console.print(tuned)
    for pair in result.paired:
        console.print(
            f"{pair.a}  vs  {pair.b}: test difference {pair.mean_difference:+.4f} over "
            f"{pair.seeds} matched seeds, p = {pair.p_value:.3g} ({pair.note})"
        )
    from ..results.compare import edge_notes, edge_text

    for words, edges in edge_notes(result.edges):
        console.print(f"{words}: " + "; ".join(edge_text(edge) for edge in edges))
    if not any(result.profile["fraction"]):
        # No arm reached the target at every seed (the fastest one counts at τ=1): say why
        # instead of printing a row of zeros.
        console.print(
            "performance profile: no arm reached the target at every seed"
            if result.target is not None
            else "performance profile: none (the sweep has no target; --target sets one)"
        )
    else:
        profile = ", ".join(
            f"τ={t:g}: {f:.2f}"
            for t, f in zip(result.profile["tau"], result.profile["fraction"], strict=True)
        )
        console.print(
            f"performance profile (fraction of arms within τ× the fastest to target): {profile}"
        )
    if result.pruned:
        from ..results.compare import pruned_by

        console.print(
            f"pruned (stopped early by {pruned_by(result.pruning)}; never compared or chosen): "
            f"{len(result.pruned)} arms, "
            + ", ".join(f"{r.label} best val {r.best_val.text()}" for r in result.pruned[:5])
            + (" …" if len(result.pruned) > 5 else "")
        )
    _print_decisions(console, result.decisions)


def _print_decisions(console: Any, decisions: list[Any]) -> None:
    """How many pruned arms were stopped within the seeds' noise, and the closest calls."""
    from ..results.compare import decided_on_noise, noise_rule

    judged, noisy = decided_on_noise(decisions)
    if not judged:
        return
    console.print(
        f"pruning decisions: {len(noisy)} of {judged} pruned arms were stopped within the seeds' "
        f"noise ({noise_rule(decisions)})"
        + (": a later rung (\\[prune] min_epochs) would judge them on more" if noisy else "")
    )
    for d in noisy[:5]:
        console.print(
            f"  {d.group}: {d.pruned} stopped at epoch {d.epoch}, {d.lead:+.4f} ± "
            f"{d.standard_error:.4f} behind {d.kept} there ({d.seeds} seeds)"
        )
    if len(noisy) > 5:
        console.print(f"  and {len(noisy) - 5} more (costhill compare --json lists them)")


COMMANDS = [compare]
