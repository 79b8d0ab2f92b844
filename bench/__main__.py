"""costhill beside its peers and beside the machine's own limit, as ratios measured in one run.

    python -m bench            # the full suite (a few minutes on 2 cores)
    python -m bench --quick    # fewer repetitions, shorter stochastic samples
    python -m bench --write    # also rewrite the table in BENCHMARKS.md and bench/results.json

Work items, on the real Fashion-MNIST (all 60,000 training images) and the seed MLP
784-200-100-30-10: a mini-batch (64, Adam) epoch, a stochastic (batch 1) epoch with plain SGD and
with Adam, and one full-batch step (Adam). Each is timed in costhill and in a PyTorch eager loop of
the same model, one after the other in this process, warm-up excluded, median of the repetitions.
The limit is the float32 matmul peak that NumPy reaches here on a large square product, measured in
the same run; an item's limit time is its FLOP count divided by that peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SIZES = (784, 200, 100, 30, 10)
ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def train_flops_per_example() -> int:
    """Forward, weight gradients and input gradients of every layer but the first (no gradient
    is needed for the images): 6*sum(a*b) - 2*784*200 multiply-adds counted as 2 FLOPs each."""
    products = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
    return 6 * products - 2 * SIZES[0] * SIZES[1]


_PEAK_SCRIPT = """
import json, time, sys
import numpy as np
n, repeats = 2048, int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
try:
    from threadpoolctl import threadpool_info
    kernel = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                       f"{i.get('num_threads')} threads" for i in threadpool_info())
except ImportError:
    kernel = "unknown (threadpoolctl missing)"
print(json.dumps({"flops": 2 * n**3 / best, "kernel": kernel}))
"""


def matmul_peak(repeats: int) -> tuple[float, str, float]:
    """float32 FLOP/s of NumPy's BLAS on a 2048x2048 product (best of ``repeats``), and the kernel.

    Measured in child processes with and without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE: this
    machine sets them for old OpenBLAS builds, and they slow a current one, which would understate
    the limit and flatter costhill. The faster reading is the limit.
    """
    unset = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    plain = {k: v for k, v in os.environ.items() if k not in unset}
    readings = []
    for child_env in (plain, dict(os.environ)):
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(max(repeats, 5))],
            env=child_env,
            capture_output=True,
            text=True,
            check=True,
        )
        readings.append(json.loads(out.stdout))
    best = max(readings, key=lambda r: r["flops"])
    return best["flops"], best["kernel"], readings[1]["flops"]


# -- costhill -----------------------------------------------------------------------------------


def costhill_epoch_seconds(data, *, batch_size, optimizer: str, lr: float, epochs: int) -> float:
    """Median training seconds of an epoch, from costhill's own per-epoch timing (compilation and
    evaluation excluded), over ``epochs`` epochs."""
    from costhill import RunConfig, train

    cfg = RunConfig(validation=0, batch_size=batch_size, optimizer=optimizer, lr=lr, epochs=epochs)
    run = train(cfg, data=data)
    return statistics.median(e.seconds for e in run.epochs)


# -- PyTorch eager --------------------------------------------------------------------------------


def torch_setup(data):
    import torch

    torch.manual_seed(0)
    layers: list = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    x = torch.from_numpy(data.train.images.reshape(len(data.train), -1))
    y = torch.from_numpy(data.train.labels.astype(np.int64))
    return torch, model, x, y


def torch_steps_seconds(data, *, batch_size: int, optimizer: str, lr: float, steps: int) -> float:
    """Seconds for ``steps`` steps of a plain eager PyTorch loop (shuffled batches, as costhill)."""
    torch, model, x, y = torch_setup(data)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(y)

    def run(count: int) -> None:
        order = torch.randperm(n)
        for i in range(count):
            idx = order[(i * batch_size) % n : (i * batch_size) % n + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    run(min(steps, 50))  # warm-up
    started = time.perf_counter()
    run(steps)
    return time.perf_counter() - started


def torch_full_batch_step(data, repeats: int) -> float:
    torch, model, x, y = torch_setup(data)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    step()
    return median_seconds(step, repeats)


# -- the suite ------------------------------------------------------------------------------------


def run_suite(quick: bool) -> dict:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from costhill.data import load

    data = load("fashion-mnist", validation=0, download=False)
    n = len(data.train)
    repeats = 3 if quick else 5
    sgd_sample = 5_000 if quick else 10_000
    flops_epoch = train_flops_per_example() * n
    results: dict = {"items": {}, "quick": quick}

    print("measuring the float32 matmul peak ...", flush=True)
    peak, kernel, peak_as_configured = matmul_peak(repeats)
    results["matmul_peak_gflops"] = peak / 1e9
    results["matmul_peak_as_configured_gflops"] = peak_as_configured / 1e9
    results["matmul_kernel"] = kernel

    def record(name: str, flops: float, costhill_s: float, torch_s: float | None, note: str = ""):
        item = {
            "flops": flops,
            "costhill_s": costhill_s,
            "limit_s": flops / peak,
            "costhill_vs_limit": costhill_s / (flops / peak),
            "torch_s": torch_s,
            "torch_vs_costhill": None if torch_s is None else torch_s / costhill_s,
            "note": note,
        }
        results["items"][name] = item
        speedup = "—" if torch_s is None else f"{torch_s / costhill_s:.2f}x"
        print(
            f"{name:<34} costhill {costhill_s:8.3f}s  limit {flops / peak:7.3f}s "
            f"({item['costhill_vs_limit']:.2f}x)  torch {torch_s or float('nan'):8.3f}s "
            f"(costhill {speedup} faster)",
            flush=True,
        )

    epochs = repeats + 1
    print("mini-batch (64, Adam) epoch ...", flush=True)
    ours = costhill_epoch_seconds(data, batch_size=64, optimizer="adam", lr=1e-3, epochs=epochs)
    steps = -(-n // 64)
    theirs = statistics.median(
        torch_steps_seconds(data, batch_size=64, optimizer="adam", lr=1e-3, steps=steps)
        for _ in range(repeats)
    )
    record("mini-batch epoch (B=64, Adam)", flops_epoch, ours, theirs)

    for optimizer, lr in (("sgd", 0.01), ("adam", 1e-4)):
        print(f"stochastic (1, {optimizer}) epoch ...", flush=True)
        ours = costhill_epoch_seconds(
            data, batch_size=1, optimizer=optimizer, lr=lr, epochs=2 if quick else 3
        )
        sample = torch_steps_seconds(
            data, batch_size=1, optimizer=optimizer, lr=lr, steps=sgd_sample
        )
        record(
            f"stochastic epoch (B=1, {optimizer})",
            flops_epoch,
            ours,
            sample * n / sgd_sample,
            note=f"PyTorch timed over {sgd_sample:,} steps, extrapolated to {n:,}",
        )

    print("full-batch step (Adam) ...", flush=True)
    ours = costhill_epoch_seconds(
        data, batch_size="full", optimizer="adam", lr=1e-3, epochs=repeats + 1
    )
    theirs = torch_full_batch_step(data, repeats)
    record("full-batch step (Adam)", flops_epoch, ours, theirs)
    return results


def machine() -> dict:
    import jax
    import torch

    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('version')}" for i in threadpool_info())
    except ImportError:
        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = str(config.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown"))
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def markdown(results: dict, info: dict, command: str) -> str:
    lines = [
        f"Command: `{command}` · {info['date']} · {info['cores']} cores ({info['cpu']}) · "
        f"Python {info['python']}, NumPy {info['numpy']} ({info['blas']}), JAX {info['jax']}, "
        f"PyTorch {info['torch']} ({info['torch_threads']} threads)",
        "",
        f"float32 matmul peak measured in the same run: {results['matmul_peak_gflops']:.1f} "
        f"GFLOP/s (NumPy, 2048x2048, best of 5; {results['matmul_kernel']}). With this "
        "machine's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE left set, NumPy reached "
        f"{results['matmul_peak_as_configured_gflops']:.1f} GFLOP/s; the limit uses the faster.",
        "",
        "| work (seed MLP, 60,000 images) | FLOPs | costhill s | limit s | costhill / limit "
        "| PyTorch eager s | PyTorch / costhill |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, item in results["items"].items():
        torch_s = "—" if item["torch_s"] is None else f"{item['torch_s']:.3f}"
        ratio = "—" if item["torch_vs_costhill"] is None else f"{item['torch_vs_costhill']:.2f}x"
        lines.append(
            f"| {name} | {item['flops']:.2e} | {item['costhill_s']:.3f} | {item['limit_s']:.3f} "
            f"| {item['costhill_vs_limit']:.2f}x | {torch_s} | {ratio} |"
        )
    notes = [f"{n}: {i['note']}" for n, i in results["items"].items() if i["note"]]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 2 minutes)")
    parser.add_argument(
        "--write",
        action="store_true",
        help="rewrite bench/results.json and the table in BENCHMARKS.md",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: `pip install --group bench` (or `make bench`)")
        return 2
    results = run_suite(args.quick)
    info = machine()
    results["machine"] = info
    command = "python -m bench" + (" --quick" if args.quick else "")
    table = markdown(results, info, command)
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write:
        (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
        _write_benchmarks_md(table)
    return 0


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _write_benchmarks_md(table: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
