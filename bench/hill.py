"""The cost hill's surface: costhill's one compiled, batched grid beside the machine's limit and
beside the way loss-landscape evaluates a grid (weights set point by point, the subset streamed in
batches of 128, PyTorch eager), measured in one run.

    python -m bench.hill                       # 41x41 grid, 10,000 examples, full Fashion-MNIST
    python -m bench.hill --grid 11 --subset 2000 --peer-points 5     # a quick look

The plane is a filter-normalized random plane around the seed MLP's initial weights (the surface
costs the same whatever plane). The limit is the time the float32 matmul peak, read in this run,
allows for the grid's nominal FLOPs: 2 × 180,100 FLOP an image a grid point (forward passes
only). costhill computes less than that: for a dense model the first layer's products are linear
in the plane's coordinates, so it forms them once for the plane, and each point pays only for
the remaining layers and the element-wise work. The PyTorch peer evaluates ``--peer-points``
points of the grid, timed per point; its grid time is that per-point time times the grid's
points (every point costs it the same).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date

import numpy as np

from bench.limits import matmul_readings, release_openblas_overrides

PEAK_SHAPE = (2048, 2048, 2048)
FORWARD_FLOPS = 2 * 180_100  # the seed MLP's forward pass, one image
PEER_BATCH = 128


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _plane(seed: int = 0):
    """The seed MLP's initial weights and a filter-normalized random plane around them."""
    from costhill.config import RunConfig
    from costhill.records import Run, flatten_params, params_layout
    from costhill.results.diagnostics import initial_params
    from costhill.results.hill import Trajectory, random_plane

    config = RunConfig()
    flat = flatten_params(initial_params(config))
    run = Run(config, "finished", "mini-batch", 64, 50_000, 782, params=flat, run_id=0)
    plane = random_plane([Trajectory(run, [0], np.zeros((1, 1)), [None])], seed=seed)
    return config, plane, params_layout(flat)


def costhill_grid(config, plane, layout, images, labels, grid: int) -> dict:
    from costhill.results.hill import PlaneCosts

    costs = PlaneCosts(config, plane, layout)
    axis = np.linspace(-1.0, 1.0, grid)
    mesh = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    started = time.perf_counter()
    first = costs(mesh, images, labels)
    compile_and_first = time.perf_counter() - started
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        again = costs(mesh, images, labels)
        seconds.append(time.perf_counter() - started)
    assert np.allclose(first, again)
    return {
        "seconds": statistics.median(seconds),
        "first": compile_and_first,
        "mesh": mesh,
        "values": again,
    }


def torch_points(plane, layout, images, labels, mesh: np.ndarray, points: int) -> dict:
    """loss-landscape's way: set the weights for a point, stream the subset in batches."""
    import torch

    from costhill.records import params_from_vector

    sizes = (784, 200, 100, 30, 10)
    model = torch.nn.Sequential(
        *[
            m
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
            for m in ([torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < 3 else []))
        ]
    )
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    x = torch.from_numpy(images.reshape(len(images), -1))
    y = torch.from_numpy(labels.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    chosen = np.linspace(0, len(mesh) - 1, points).astype(int)
    per_point, values = [], []
    for index in chosen:
        a, b = mesh[index]
        started = time.perf_counter()
        point = plane.origin + a * plane.directions[0] + b * plane.directions[1]
        flat = params_from_vector(point.astype(np.float32), layout)
        with torch.no_grad():
            for i, layer in enumerate(linears):
                layer.weight.copy_(torch.from_numpy(flat[f"dense_{i}/kernel"].T.copy()))
                layer.bias.copy_(torch.from_numpy(flat[f"dense_{i}/bias"]))
            total = 0.0
            for start in range(0, len(y), PEER_BATCH):
                total += float(
                    loss_fn(model(x[start : start + PEER_BATCH]), y[start : start + PEER_BATCH])
                )
        per_point.append(time.perf_counter() - started)
        values.append(total / len(y))
    return {
        "per_point": statistics.median(per_point),
        "indices": chosen,
        "values": values,
        "threads": torch.get_num_threads(),
        "version": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=41)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--peer-points", type=int, default=25)
    parser.add_argument("--json", help="Also write the results to this file.")
    args = parser.parse_args()
    release_openblas_overrides()

    from costhill.data import load
    from costhill.engine import prepare_process
    from costhill.results.hill import subset_of

    config, plane, layout = _plane()
    prepare_process([config])
    data = load("fashion-mnist")
    images, labels = subset_of(data, args.subset)
    peak_seconds = min(
        matmul_readings([PEAK_SHAPE], repeats=5)["seconds"][0],
        matmul_readings([PEAK_SHAPE], repeats=5)["seconds"][0],
    )
    peak = 2 * PEAK_SHAPE[0] * PEAK_SHAPE[1] * PEAK_SHAPE[2] / peak_seconds
    ours = costhill_grid(config, plane, layout, images, labels, args.grid)
    peer = torch_points(plane, layout, images, labels, ours["mesh"], args.peer_points)
    agree = max(
        abs(ours["values"][i] - v) / v for i, v in zip(peer["indices"], peer["values"], strict=True)
    )
    points = args.grid * args.grid
    limit = FORWARD_FLOPS * len(labels) * points / peak
    peer_grid = peer["per_point"] * points
    result = {
        "date": date.today().isoformat(),
        "machine": f"{_cpu()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "grid": args.grid,
        "subset": len(labels),
        "peak_gflops": peak / 1e9,
        "limit_seconds": limit,
        "costhill_seconds": ours["seconds"],
        "costhill_first_call_seconds": ours["first"],
        "peer_grid_seconds": peer_grid,
        "peer_per_point_seconds": peer["per_point"],
        "peer_points": args.peer_points,
        "torch": peer["version"],
        "torch_threads": peer["threads"],
        "max_relative_difference": agree,
    }
    print(json.dumps(result, indent=1))
    print()
    print(
        "| grid | examples | limit (peak) | costhill | costhill / limit | PyTorch eager, "
        "loss-landscape's way | PyTorch / costhill |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.grid}×{args.grid} | {len(labels):,} | {limit:.2f} s ({peak / 1e9:.0f} GFLOP/s) "
        f"| {ours['seconds']:.2f} s | {ours['seconds'] / limit:.2f} | {peer_grid:.1f} s "
        f"({peer['per_point'] * 1e3:.1f} ms a point × {points}) | "
        f"{peer_grid / ours['seconds']:.1f}× |"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
