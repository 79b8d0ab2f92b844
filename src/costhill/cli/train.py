"""``costhill train`` and ``costhill demo``: train, show progress, store the run."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ..config import ACTIVATION_NAMES, DATASET_NAMES, MODEL_NAMES, default
from .console import DownloadProgress, make_console
from .options import DATA_OPTION, JSON_OPTION, STORE_OPTION, TENSORBOARD_OPTION

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..records import Run


def build_config(
    preset: str | None, flags: dict[str, Any], opt_pairs: tuple[str, ...]
) -> RunConfig:
    """Defaults, then the preset, then every flag the user gave."""
    from ..config import from_dict, load_preset
    from ..specs import parse_batch_size, parse_pair

    values: dict[str, Any] = load_preset(preset) if preset else {}
    for key, value in flags.items():
        if value is not None:
            values[key] = value
    if "batch_size" in values:
        values["batch_size"] = parse_batch_size(values["batch_size"])
    if opt_pairs:
        opt = dict(values.get("opt", {}))
        opt.update(parse_pair(pair, what="opt") for pair in opt_pairs)
        values["opt"] = opt
    return from_dict(values, source=f"preset {preset} with flags" if preset else "flags")


def run_and_store(
    config: RunConfig,
    *,
    store_path: str,
    data_dir: str | None,
    quiet: bool = False,
    tensorboard: str | None = None,
    resume: Run | None = None,
    replacing: int | None = None,
) -> Run:
    """Train ``config`` (or continue the interrupted run ``resume``, or train again in place the
    stopped run ``replacing``, which kept nothing) with a progress bar on stderr, writing each
    epoch, and what continuing needs, to the store (and to TensorBoard event files under
    ``tensorboard``)."""
    from ..engine import prepare_process
    from ..engine.compilation_cache import removing_unreadable_entries

    cache = prepare_process([config])
    with removing_unreadable_entries(cache) as removed:
        run = _run_and_store(config, store_path, data_dir, quiet, tensorboard, resume, replacing)
    if removed:
        make_console(stderr=True, quiet=quiet).print(
            f"[yellow]compilation cache {cache}: unreadable entries for {', '.join(removed)} "
            "were compiled again and removed[/]"
        )
    return run


def _run_and_store(
    config: RunConfig,
    store_path: str,
    data_dir: str | None,
    quiet: bool,
    tensorboard: str | None,
    resume: Run | None,
    replacing: int | None,
) -> Run:
    from ..data import load_for
    from ..engine import check, check_batch_size, train
    from ..store import Store

    check(config)
    console = make_console(stderr=True, quiet=quiet)
    with DownloadProgress(console) as download:
        data = load_for(config, data_dir=data_dir, progress=download)
    check_batch_size(config, data)  # before the store is made
    if config.dataset == "fashion-mnist-sample":
        console.print(
            "[yellow]training on the shipped sample (2,000 images), not the full set: "
            "accuracies are lower than on the full Fashion-MNIST[/]"
        )
    store = Store(store_path)
    shown = _TrainProgress(console, store, config.epochs, tensorboard, replacing)
    try:
        with shown.progress:
            run = train(
                config,
                data=data,
                on_start=shown.on_start,
                on_epoch=shown.on_epoch,
                keep_state=True,
                resume=resume,
            )
        store.finish(run)
    except KeyboardInterrupt:
        if shown.started and shown.started[0].run_id is not None:
            kept = shown.started[0]
            store.mark(int(kept.run_id or 0), "interrupted")
            console.print(
                f"interrupted: run {kept.run_id} kept as 'interrupted' with "
                f"{len(kept.epochs)} finished epoch(s); continue it with "
                f"`costhill train --resume {kept.run_id}`"
            )
        store.close()
        sys.exit(130)
    finally:
        shown.close()
    store.close()
    return run


class _TrainProgress:
    """A run's hooks: each epoch into the store (and TensorBoard), and a progress bar."""

    def __init__(
        self,
        console: Any,
        store: Any,
        epochs: int,
        tensorboard: str | None,
        replacing: int | None = None,
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.store = store
        self.tensorboard = tensorboard
        self.replacing = replacing
        self.progress = Progress(
            TextColumn("[bold]epoch[/]"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs, info="compiling")
        self.started: list[Run] = []
        self.writers: list[Any] = []

    def on_start(self, run: Run) -> None:
        self.started.append(run)
        if run.run_id is None:
            self.store.begin(run, replacing=self.replacing)
        else:  # an interrupted run, continued
            self.store.reopen(run)
            self.progress.update(self.task, completed=len(run.epochs))
        if self.tensorboard:
            from ..results.tensorboard import TensorBoardWriter

            self.writers.append(TensorBoardWriter(self.tensorboard, run))
        info = f"run {run.run_id} · compiled in {run.compile_seconds:.1f}s"
        self.progress.update(self.task, info=info)

    def on_epoch(self, run: Run, record: Any, costs: Any) -> None:
        self.store.add_epoch(run, record, costs)
        for writer in self.writers:
            writer.epoch(run, record, costs)
        rate = len(costs) * run.batch_size / max(record.seconds, 1e-9)
        val = "—" if record.val_accuracy is None else f"{record.val_accuracy:.4f}"
        self.progress.update(
            self.task,
            completed=record.epoch,
            info=(
                f"step {record.steps:,} · cost {record.mean_step_cost:.4f} · val acc {val} · "
                f"{rate:,.0f} ex/s"
            ),
        )

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def print_summary(run: Run, *, as_json: bool) -> None:
    from rich.table import Table

    summary = run.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    table = Table(title=f"run {run.run_id} · {run.status}", show_header=False)
    cfg = run.config
    rows = [
        (
            "config",
            f"{cfg.model} {cfg.init} · {cfg.optimizer} lr={cfg.lr:g} · {run.regime} "
            f"(batch {run.batch_size}) · seed {cfg.seed}",
        ),
        ("epochs · steps", f"{summary['epochs']} · {summary['steps']:,}"),
        ("training seconds", f"{summary['seconds']:.2f} (+ {run.compile_seconds:.2f} compiling)"),
    ]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "train_cost", "test_cost"):
        value = summary[key]
        rows.append((key.replace("_", " "), "—" if value is None else f"{value:.4f}"))
    if run.diverged_step is not None:
        rows.append(("diverged", f"at step {run.diverged_step:,} (cost became NaN or infinite)"))
    if cfg.target_accuracy is not None:
        t = run.target
        rows.append(
            (
                "target",
                f"{cfg.target_accuracy} {t.split} accuracy at epoch {t.epoch}, step {t.step:,}, "
                f"{t.seconds:.2f}s"
                if t
                else f"{cfg.target_accuracy} not reached",
            )
        )
    for key, value in rows:
        table.add_row(key, value)
    make_console().print(table)


@click.command()
@click.option("--preset", help="A bundled preset (see `costhill presets`); flags override it.")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help=f"[{default('dataset')}]")
@DATA_OPTION
@click.option(
    "--validation",
    type=int,
    help="Training examples held out for validation "
    "[default: 10,000; 500 on the sample]; 0 allowed.",
)
@click.option(
    "--split-seed",
    type=int,
    help=f"Seed that picks the validation examples [{default('split_seed')}].",
)
@click.option("--model", type=click.Choice(MODEL_NAMES), help=f"[{default('model')}]")
@click.option(
    "--hidden",
    help=f"Hidden widths of the MLP [{','.join(map(str, default('hidden')))}].",
)
@click.option(
    "--activation", type=click.Choice(ACTIVATION_NAMES), help=f"[{default('activation')}]"
)
@click.option("--init", help=f"Weight initializer, NAME[:KEY=VALUE,...] [{default('init')}].")
@click.option("--bias-init", help=f"Bias initializer [{default('bias_init')}].")
@click.option(
    "--optimizer",
    help=f"Optax optimizer by name (see `costhill optimizers`) [{default('optimizer')}].",
)
@click.option(
    "--lr", type=float, help=f"Learning rate (the peak, under a schedule) [{default('lr'):g}]."
)
@click.option(
    "--opt",
    "opt_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An optimizer hyperparameter; repeat for more.",
)
@click.option(
    "--schedule",
    help="constant, cosine, exponential, step, warmup-cosine, "
    f"with options in epochs (step:every=10,factor=0.1) [{default('schedule')}].",
)
@click.option(
    "--batch-size",
    help=f"'full' (batch GD), 1 (stochastic) or N (mini-batch) [{default('batch_size')}].",
)
@click.option(
    "--drop-last/--keep-last",
    default=None,
    help="Drop the last partial batch of each epoch [keep it].",
)
@click.option("--epochs", type=int, help=f"[{default('epochs')}]")
@click.option("--seed", type=int, help=f"Seeds initialization and data order [{default('seed')}].")
@click.option(
    "--target-accuracy", type=float, help="Record when validation accuracy first reaches this."
)
@click.option(
    "--stop-at-target/--no-stop-at-target",
    default=None,
    help="End the run at the epoch that first reaches --target-accuracy.",
)
@click.option(
    "--snapshots",
    type=int,
    metavar="K",
    help="Keep K+1 evenly spaced parameter snapshots, step 0 included, for `costhill hill` "
    f"[{default('snapshots')}: none].",
)
@STORE_OPTION
@JSON_OPTION
@click.option("--quiet", is_flag=True, help="No progress bar.")
@TENSORBOARD_OPTION
@click.option(
    "--resume",
    "resume_id",
    type=int,
    metavar="RUN",
    help="Continue interrupted run RUN from its last finished epoch, with its stored config.",
)
def train(
    preset: str | None,
    data_dir: str | None,
    opt_pairs: tuple[str, ...],
    store_path: str,
    as_json: bool,
    quiet: bool,
    tensorboard: str | None,
    resume_id: int | None,
    **flags: Any,
) -> None:
    """Train one classifier and store the run.

    Every epoch commits what continuing needs, so an interrupted run (Ctrl-C, kill, a crash)
    goes on with --resume and ends with the numbers of a run never interrupted.

    \b
    Example:
        costhill train --preset seed
        costhill train --init he_normal --optimizer sgd --lr 0.1 --batch-size 1 --epochs 2
        costhill train --batch-size full --optimizer adam --lr 1e-2 --epochs 200 --json
        costhill train --resume 7
    """
    resume, replacing = None, None
    if resume_id is not None:
        from ..store import Store

        if preset or opt_pairs or any(v is not None for v in flags.values()):
            raise click.UsageError("--resume continues the run's stored config: give no settings")
        with Store(store_path, create=False) as store:
            resume = store.resumable(resume_id)
        config = resume.config
        if resume.state is None:  # killed before its first epoch ended: train it again in place
            replacing, resume = resume_id, None
    else:
        config = build_config(preset, flags, opt_pairs)
    run = run_and_store(
        config,
        store_path=store_path,
        data_dir=data_dir,
        quiet=quiet,
        tensorboard=tensorboard,
        resume=resume,
        replacing=replacing,
    )
    print_summary(run, as_json=as_json)


@click.command()
@click.option("--epochs", type=int, help="Shorten the seed run (the article trains 100).")
@DATA_OPTION
@STORE_OPTION
@click.option(
    "--out",
    default="costhill-demo.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to draw the cost curve.",
)
@click.option(
    "--report",
    "report_path",
    default="costhill-demo.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the run's HTML report.",
)
def demo(
    epochs: int | None, data_dir: str | None, store_path: str, out: str, report_path: str
) -> None:
    """Reproduce the article: train the seed MLP, draw its cost, name some test images, and
    write the HTML report of the run (its curves, its path on the cost hill, its predictions).

    Uses the full Fashion-MNIST where it is found, else the sample shipped with costhill.

    \b
    Example:
        costhill demo
        costhill demo --epochs 20 --out demo.png
    """

    from ..data import full_data_available
    from ..results.plots import plot_costs
    from ..results.report import write_report
    from ..store import Store
    from .predict import show_predictions

    console = make_console()
    flags: dict[str, Any] = {"epochs": epochs, "snapshots": 10}
    if full_data_available(data_dir):
        console.print("[bold]costhill demo[/]: the article's seed run on the full Fashion-MNIST")
    else:
        console.print(
            "[bold]costhill demo[/]: the full Fashion-MNIST was not found "
            "(install Debian's dataset-fashion-mnist or run `costhill data fetch`), "
            "so the demo uses the 2,000-image sample shipped with costhill"
        )
        flags["dataset"] = "fashion-mnist-sample"
    config = build_config("seed", flags, ())
    run = run_and_store(config, store_path=store_path, data_dir=data_dir)
    print_summary(run, as_json=False)
    console.print("article (TensorFlow, 100 epochs): train accuracy 0.978, test accuracy 0.888")
    plot_costs([run], out)
    console.print(f"cost curve: {out}")
    show_predictions(run, data_dir=data_dir, indices=None, count=5, seed=None)
    with Store(store_path, read_only=True) as store:
        summary = write_report(
            store, report_path, run_ids=[int(run.run_id or 0)], data_dir=data_dir
        )
    console.print(f"report (open it in a browser): {summary.path.resolve()}")


COMMANDS = [train, demo]
