"""The cost hill: the training cost over a 2-D plane of parameter space, with runs' paths on it.

    costhill train --preset seed --epochs 10 --snapshots 20          # runs with snapshots
    costhill hill 1 2 3 --out hill.png                               # PCA plane of all three
    costhill hill 1 2 --plane endpoints --out ends.png
    costhill hill 1 --plane random --out random.png                  # Li et al. 2018
    costhill hill 1 2 --line --out line.png                          # Goodfellow et al. 2015

Planes (``PLANES``):

- ``pca``: the principal components of all the given runs' snapshots *together*, so that runs from
  one initial point share one plane and their paths compare; the origin is the first run's
  initial point. Its axes' explained variance is shown, and a PCA that looks like a random walk's
  (Antognini & Sohl-Dickstein 2018: a random walk, too, puts most of its variance in two
  components, its projections cosines of time) is flagged.
- ``endpoints``: the plane through the first run's initial point and two runs' end points
  (Gram–Schmidt), in units of parameter-space distance.
- ``random``: two Gaussian directions around the first run's final weights, filter-normalized as
  in Li et al. 2018 (each output unit's column of a kernel scaled to that column's norm; biases
  left out of the directions, their ``biasbn`` option), coordinates in those directions' units.

The surface is one compiled, batched evaluation of the grid on a fixed subset of the training
split; for dense models the first layer's products are computed once for the plane (they are
linear in its coordinates), and each grid point pays only for the rest. The subset's error
against the whole split is measured at a few points. Every snapshot's true cost (stored, on the
whole split) is shown beside the surface's value at its projection, with its distance off the
plane relative to its distance from the origin; where they disagree by more than ``tolerance``
the figure says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import HILL_PLANES, RunConfig
from ..data import Dataset, load_for
from ..errors import ConfigError, StoreError
from ..records import Run, params_from_vector, params_layout, params_vector, unflatten_params
from ..store import Store

PLANES = HILL_PLANES
DEFAULT_GRID = 41
DEFAULT_SUBSET = 10_000
DEFAULT_TOLERANCE = 0.10  # relative disagreement between a true cost and the surface's value
DEFAULT_MARGIN = 0.25  # the grid reaches this fraction of the paths' extent beyond them
RANDOM_PLANE_SPAN = 1.0  # half-width of a random plane's grid, in its directions' units
# A pooled PCA whose first axis explains less than this, and whose projections follow cos(πt)
# and cos(2πt) this closely, is flagged as looking like a random walk's.
RANDOM_WALK_EXPLAINED = 0.9
RANDOM_WALK_LIKENESS = 0.9
# Refused up front: the CNN's grid of forward passes grows past what a laptop does in minutes.
MAX_GRID_FLOP = 5e13


@dataclass
class Trajectory:
    """A stored run's snapshots as parameter vectors, with their steps and true costs."""

    run: Run
    steps: list[int]
    vectors: np.ndarray  # (snapshots, parameters), float32
    true_costs: list[float | None]


@dataclass
class Plane:
    kind: str
    origin: np.ndarray  # (parameters,)
    directions: np.ndarray  # (2, parameters); orthonormal except on a random plane
    explained: list[float] | None = None  # PCA: each axis's share of the variance
    origin_label: str = ""

    def axis_label(self, axis: int) -> str:
        name = {"pca": f"PC{axis + 1}", "endpoints": ("to run A's end", "to run B's end")[axis]}
        label = name.get(self.kind, f"random direction {axis + 1}")
        if self.explained is not None:
            label += f" ({100 * self.explained[axis]:.1f}% of the variance)"
        return label


@dataclass
class PathOnPlane:
    run_id: int
    label: str
    steps: list[int]
    coords: list[list[float]]  # each snapshot's projection (a, b)
    off_plane: list[float]  # distance off the plane / distance from the origin
    true_costs: list[float | None]  # stored, on the whole training split
    surface_costs: list[float]  # the surface (the subset) at each projection
    disagree: list[bool]
    random_walk_likeness: float | None = None
    sharpness: dict[str, Any] | None = None


@dataclass
class Hill:
    """Everything the figure and the report show, as plain data (``to_dict`` is JSON-ready)."""

    plane: str
    axis_labels: list[str]
    explained: list[float] | None
    alphas: list[float]
    betas: list[float]
    surface: list[list[float]]  # surface[j][i]: the cost at (alphas[i], betas[j])
    paths: list[PathOnPlane]
    subset: int
    subset_check: list[dict[str, float]]  # the subset's surface against the whole split
    tolerance: float
    warnings: list[str] = field(default_factory=list)
    origin_label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_trajectories(store: Store, run_ids: list[int]) -> list[Trajectory]:
    """The given runs with their snapshots, checked to share one model and one dataset split."""
    if not run_ids:
        raise ConfigError("runs: name at least one run")
    trajectories = []
    for run_id in run_ids:
        run = store.load(run_id)
        snapshots = store.load_snapshots(run_id)
        if len(snapshots) < 2:
            raise StoreError(
                f"run {run_id}: has {len(snapshots)} parameter snapshot(s); a path needs two "
                "or more: train it with --snapshots K (or snapshots = K in its plan)"
            )
        trajectories.append(
            Trajectory(
                run=run,
                steps=[s.step for s in snapshots],
                vectors=np.stack([params_vector(s.params) for s in snapshots]),
                true_costs=[s.train_cost for s in snapshots],
            )
        )
    first = trajectories[0].run.config
    for t in trajectories[1:]:
        differ = [k for k in _SHARED if getattr(t.run.config, k) != getattr(first, k)]
        if differ:
            raise ConfigError(
                f"run {t.run.run_id}: differs from run {trajectories[0].run.run_id} in "
                f"{', '.join(differ)}; a hill needs one model on one dataset split"
            )
    return trajectories


_SHARED = ("dataset", "validation", "split_seed", "model", "hidden", "activation")


# -- planes ------------------------------------------------------------------------------------


def pca_plane(trajectories: list[Trajectory]) -> Plane:
    """The top two principal components of every snapshot of every run, pooled."""
    points = np.concatenate([t.vectors for t in trajectories]).astype(np.float64)
    centred = points - points.mean(axis=0)
    # Few snapshots, many parameters: the eigenvectors of the small Gram matrix give the
    # components without forming the parameters' covariance.
    gram = centred @ centred.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    if values.size < 3 or values[1] <= 0:
        raise ConfigError("plane pca: the snapshots span fewer than two directions")
    components = (centred.T @ vectors[:, :2]) / np.sqrt(values[:2])
    explained = [float(v / values.sum()) for v in values[:2]]
    return Plane(
        "pca",
        trajectories[0].vectors[0].astype(np.float64),
        components.T,
        explained,
        f"run {trajectories[0].run.run_id}'s initial point",
    )


def endpoints_plane(trajectories: list[Trajectory]) -> Plane:
    """Through the first run's start and the end points of the first two runs."""
    if len(trajectories) < 2:
        raise ConfigError("plane endpoints: name two runs (their end points span the plane)")
    origin = trajectories[0].vectors[0].astype(np.float64)
    first = trajectories[0].vectors[-1] - origin
    second = trajectories[1].vectors[-1] - origin
    d1 = first / np.linalg.norm(first)
    rest = second - (second @ d1) * d1
    if np.linalg.norm(rest) <= 1e-9 * np.linalg.norm(second):
        raise ConfigError("plane endpoints: the two end points lie on one line from the start")
    d2 = rest / np.linalg.norm(rest)
    label = f"run {trajectories[0].run.run_id}'s initial point"
    return Plane("endpoints", origin, np.stack([d1, d2]), None, label)


def random_plane(trajectories: list[Trajectory], *, seed: int = 0) -> Plane:
    """Filter-normalized random directions around the first run's final weights."""
    run = trajectories[0].run
    if not run.params:
        raise StoreError(f"run {run.run_id}: has no final parameters for a random plane")
    layout = params_layout(run.params)
    rng = np.random.default_rng(seed)
    directions = []
    for _ in range(2):
        parts = {}
        for path, shape in layout:
            weights = np.asarray(run.params[path], np.float64)
            if len(shape) < 2:  # a bias: left out, as in Li et al.'s biasbn option
                parts[path] = np.zeros(shape)
                continue
            direction = rng.standard_normal(shape)
            # One filter = one output unit: the last axis of a JAX (in, out) kernel.
            axes = tuple(range(len(shape) - 1))
            scale = np.linalg.norm(weights, axis=axes) / (
                np.linalg.norm(direction, axis=axes) + 1e-10
            )
            parts[path] = direction * scale
        directions.append(params_vector(parts).astype(np.float64))
    origin = params_vector(run.params).astype(np.float64)
    return Plane("random", origin, np.stack(directions), None, f"run {run.run_id}'s final point")


def make_plane(kind: str, trajectories: list[Trajectory], *, seed: int = 0) -> Plane:
    if kind == "pca":
        return pca_plane(trajectories)
    if kind == "endpoints":
        return endpoints_plane(trajectories)
    if kind == "random":
        return random_plane(trajectories, seed=seed)
    raise ConfigError(f"plane {kind!r}: unknown plane; known: {', '.join(PLANES)}")


def project(plane: Plane, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's coordinates on the plane (least squares, so a non-orthogonal random plane
    is handled too), and its distance off the plane relative to its distance from the origin.

    Examples:
      >>> plane = Plane("endpoints", np.zeros(3), np.eye(3)[:2])
      >>> coords, off = project(plane, np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 2.0]]))
      >>> coords.tolist(), off.tolist()
      ([[1.0, 2.0], [0.0, 0.0]], [0.0, 1.0])
    """
    offsets = np.asarray(vectors, np.float64) - plane.origin
    basis = plane.directions
    coords = np.linalg.solve(basis @ basis.T, basis @ offsets.T).T
    residual = offsets - coords @ basis
    distance = np.linalg.norm(offsets, axis=1)
    off = np.linalg.norm(residual, axis=1) / np.where(distance > 0, distance, 1.0)
    return coords, np.where(distance > 0, off, 0.0)


def random_walk_likeness(coords: np.ndarray) -> float | None:
    """How closely a path's two PCA projections follow cos(πt) and cos(2πt) (the smaller of
    the two absolute correlations), as a random walk's do; None for fewer than 5 snapshots."""
    if len(coords) < 5:
        return None
    t = np.linspace(0.0, 1.0, len(coords))
    scores = []
    for axis, k in ((0, 1), (1, 2)):
        values = coords[:, axis]
        if np.std(values) == 0:
            return 0.0
        scores.append(abs(float(np.corrcoef(values, np.cos(k * np.pi * t))[0, 1])))
    return min(scores)


# -- the surface -------------------------------------------------------------------------------


def subset_of(data: Dataset, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed subset of the training split (the same for every hill of that split)."""
    n = len(data.train)
    if size is None or size >= n:
        return data.train.images, data.train.labels
    if size < 1:
        raise ConfigError(f"subset {size}: must be at least 1 (or all)")
    chosen = np.sort(np.random.default_rng(0).permutation(n)[:size])
    return data.train.images[chosen], data.train.labels[chosen]


class PlaneCosts:
    """The mean training cost at points (a, b) of a plane, as one compiled, batched call."""

    def __init__(self, config: RunConfig, plane: Plane, layout: list[tuple[str, tuple]]) -> None:

        from ..models import DENSE_MODELS, make_model

        self.config = config
        self.model = make_model(config.model, hidden=config.hidden, activation=config.activation)
        self.dense = config.model in DENSE_MODELS

        self.trees = tuple(
            _tree(params_from_vector(vector.astype(np.float32), layout))
            for vector in (plane.origin, *plane.directions)
        )
        self._compiled: Any = None  # jit keeps one executable per shape of points and subset

    def flop(self, points: int, examples: int) -> float:
        return 2.0 * self.model.forward_flops * points * examples

    def __call__(self, points: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import jax.numpy as jnp

        points = np.asarray(points, np.float32).reshape(-1, 2)
        chunk = self._chunk(len(labels))
        padded = math.ceil(len(points) / chunk) * chunk
        grid = np.zeros((padded, 2), np.float32)
        grid[: len(points)] = points
        if self._compiled is None:
            self._compiled = self._build()
        costs = self._compiled(*self.trees, jnp.asarray(grid.reshape(-1, chunk, 2)), images, labels)
        return np.asarray(costs).reshape(-1)[: len(points)].astype(np.float64)

    def _chunk(self, examples: int) -> int:
        # Points evaluated at once: bounded so that their activations stay near 64 MB.
        width = max(self.config.hidden or (10,)) if self.dense else 28 * 28 * 64
        return max(1, min(64, 2**26 // max(1, examples * width * 4)))

    def _build(self) -> Any:
        import jax
        import optax

        from ..models import batched_logits, dense_layers_after_first

        model, dense, activation = self.model, self.dense, self.config.activation

        def along(origin: Any, d1: Any, d2: Any, a: Any, b: Any) -> Any:
            return jax.tree.map(lambda o, u, v: o + a * u + b * v, origin, d1, d2)

        def costs(origin, d1, d2, chunks, images, labels):
            if dense:
                x = images.reshape(images.shape[0], -1)
                firsts = [
                    x @ t["dense_0"]["kernel"] + t["dense_0"]["bias"] for t in (origin, d1, d2)
                ]

            def one(point):
                a, b = point[0], point[1]
                params = along(origin, d1, d2, a, b)
                if dense:
                    first = firsts[0] + a * firsts[1] + b * firsts[2]
                    logits = dense_layers_after_first(params, first, activation)
                else:
                    logits = batched_logits(model, params, images)
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

            return jax.lax.map(jax.vmap(one), chunks)

        return jax.jit(costs)


def grid_axes(
    plane: Plane, coords: np.ndarray, *, grid: int, span: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The grid's a and b values: around the paths (with a margin), or a random plane's ±span."""
    if grid < 3:
        raise ConfigError(f"grid {grid}: must be at least 3")
    if plane.kind == "random":
        half = RANDOM_PLANE_SPAN if span is None else span
        if half <= 0:
            raise ConfigError(f"span {half}: must be positive")
        values = np.linspace(-half, half, grid)
        return values, values.copy()
    margin = DEFAULT_MARGIN if span is None else span
    if margin < 0:
        raise ConfigError(f"span {margin}: must be zero or more")
    axes = []
    for axis in range(2):
        low, high = float(coords[:, axis].min()), float(coords[:, axis].max())
        reach = max(high - low, 1e-3 * max(abs(low), abs(high), 1.0))
        axes.append(np.linspace(low - margin * reach, high + margin * reach, grid))
    return axes[0], axes[1]


def compute_hill(
    store: Store,
    run_ids: list[int],
    *,
    plane: str = "pca",
    grid: int = DEFAULT_GRID,
    span: float | None = None,
    subset: int | None = DEFAULT_SUBSET,
    tolerance: float = DEFAULT_TOLERANCE,
    data_dir: str | None = None,
    seed: int = 0,
    with_sharpness: bool = True,
) -> Hill:
    """The hill of ``run_ids`` (see the module docstring); sharpness is read from the store, or
    measured at each run's end point on the same subset and stored."""
    trajectories = load_trajectories(store, run_ids)
    chosen = make_plane(plane, trajectories, seed=seed)
    config = trajectories[0].run.config
    data = load_for(config, data_dir=data_dir)
    images, labels = subset_of(data, subset)
    layout = params_layout(trajectories[0].run.params or {})
    costs = PlaneCosts(config, chosen, layout)
    projections = [project(chosen, t.vectors) for t in trajectories]
    all_coords = np.concatenate([c for c, _ in projections])
    alphas, betas = grid_axes(chosen, all_coords, grid=grid, span=span)
    flop = costs.flop(grid * grid, len(labels))
    if flop > MAX_GRID_FLOP:
        raise ConfigError(
            f"grid {grid}: {grid}x{grid} points on {len(labels):,} examples is {flop:.1e} FLOP "
            f"of {config.model} forward passes; shrink it (e.g. --grid 15 --subset 1000)"
        )
    mesh = np.stack(np.meshgrid(alphas, betas), axis=-1).reshape(-1, 2)
    surface = costs(mesh, images, labels).reshape(len(betas), len(alphas))
    paths = [
        _path(t, coords, off, costs(coords, images, labels), tolerance)
        for t, (coords, off) in zip(trajectories, projections, strict=True)
    ]
    hill = Hill(
        plane=chosen.kind,
        axis_labels=[chosen.axis_label(0), chosen.axis_label(1)],
        explained=chosen.explained,
        alphas=alphas.tolist(),
        betas=betas.tolist(),
        surface=surface.tolist(),
        paths=paths,
        subset=len(labels),
        subset_check=_subset_check(costs, data, mesh, surface.reshape(-1), len(labels)),
        tolerance=tolerance,
        origin_label=chosen.origin_label,
    )
    if chosen.kind == "pca":
        for path, (coords, _) in zip(paths, projections, strict=True):
            path.random_walk_likeness = random_walk_likeness(coords)
    if with_sharpness:
        for path, t in zip(paths, trajectories, strict=True):
            path.sharpness = measured_sharpness(store, t.run, images, labels, seed=seed)
    hill.warnings = _warnings(hill)
    return hill


def _path(
    t: Trajectory, coords: np.ndarray, off: np.ndarray, surface: np.ndarray, tolerance: float
) -> PathOnPlane:
    disagree = [
        cost is not None and abs(value - cost) > tolerance * max(abs(cost), 1e-12)
        for cost, value in zip(t.true_costs, surface, strict=True)
    ]
    run = t.run
    cfg = run.config
    size = "N" if run.regime == "full-batch" else str(run.batch_size)
    return PathOnPlane(
        run_id=int(run.run_id or 0),
        label=f"run {run.run_id}: {cfg.optimizer} lr={cfg.lr:g} · {run.regime} (B={size})",
        steps=t.steps,
        coords=coords.tolist(),
        off_plane=off.tolist(),
        true_costs=t.true_costs,
        surface_costs=surface.tolist(),
        disagree=disagree,
    )


def _subset_check(
    costs: PlaneCosts, data: Dataset, mesh: np.ndarray, surface: np.ndarray, subset: int
) -> list[dict[str, float]]:
    """The surface on the subset against the whole training split at three grid points."""
    if subset >= len(data.train):
        return []
    picks = [0, len(mesh) // 2, len(mesh) - 1]
    full = costs(mesh[picks], data.train.images, data.train.labels)
    return [
        {"a": float(mesh[i][0]), "b": float(mesh[i][1]), "subset": float(surface[i]), "full": f}
        for i, f in zip(picks, full.tolist(), strict=True)
    ]


def _warnings(hill: Hill) -> list[str]:
    warnings = []
    for path in hill.paths:
        bad = sum(path.disagree)
        if bad:
            worst = max(path.off_plane)
            warnings.append(
                f"run {path.run_id}: at {bad} of {len(path.steps)} snapshots the surface and the "
                f"true cost differ by more than {100 * hill.tolerance:.0f}% (the path leaves the "
                f"plane: up to {100 * worst:.0f}% of its distance from the origin lies off it)"
            )
        likeness = path.random_walk_likeness
        explained = hill.explained or [1.0]
        if likeness is not None and likeness > RANDOM_WALK_LIKENESS:
            if explained[0] < RANDOM_WALK_EXPLAINED:
                warnings.append(
                    f"run {path.run_id}: its PCA projections follow cos(πt) and cos(2πt) "
                    f"(correlation {likeness:.2f}) as a random walk's do (Antognini & "
                    "Sohl-Dickstein 2018); the plane may show little of the hill"
                )
    for check in hill.subset_check:
        if abs(check["subset"] - check["full"]) > hill.tolerance * max(check["full"], 1e-12):
            warnings.append(
                f"the {hill.subset:,}-example subset differs from the whole split by more than "
                f"{100 * hill.tolerance:.0f}% at ({check['a']:.3g}, {check['b']:.3g})"
            )
            break
    return warnings


# -- sharpness and the straight line -----------------------------------------------------------


def measured_sharpness(
    store: Store, run: Run, images: np.ndarray, labels: np.ndarray, *, seed: int = 0
) -> dict[str, Any]:
    """The stored sharpness of ``run``'s end point on this many examples, or measured now."""
    import jax

    from .sharpness import sharpness

    run_id = int(run.run_id or 0)
    kept = store.sharpness(run_id, examples=len(labels))
    if kept is not None:
        return kept
    if not run.params:
        raise StoreError(f"run {run_id}: has no final parameters to measure sharpness at")
    loss = training_cost(run.config, images, labels)
    measured = sharpness(loss, _tree(run.params), key=jax.random.key(seed))
    if not store.read_only:
        store.save_sharpness(run_id, len(labels), measured)
    return {**measured, "examples": len(labels)}


def training_cost(config: RunConfig, images: np.ndarray, labels: np.ndarray) -> Any:
    """The mean cross-entropy of ``config``'s model on these examples, as a function of its
    parameters."""
    import jax.numpy as jnp
    import optax

    from ..models import batched_logits, make_model

    model = make_model(config.model, hidden=config.hidden, activation=config.activation)
    x, y = jnp.asarray(images), jnp.asarray(labels)

    def loss(params: Any) -> Any:
        logits = batched_logits(model, params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss


def _tree(flat: dict[str, np.ndarray]) -> Any:
    """Flat parameters as the nested pytree of device arrays the models take."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(jnp.asarray, unflatten_params(flat))


@dataclass
class Line:
    """The cost along a straight line between two points of parameter space."""

    label: str
    alphas: list[float]
    costs: list[float]


def lines(
    store: Store,
    run_ids: list[int],
    *,
    points: int = 41,
    subset: int | None = DEFAULT_SUBSET,
    data_dir: str | None = None,
) -> list[Line]:
    """Goodfellow et al. 2015: the cost from each run's initial to its final point (alpha 0 to
    1, and a quarter beyond each end), and between the first two runs' final points."""
    trajectories = load_trajectories(store, run_ids)
    config = trajectories[0].run.config
    images, labels = subset_of(load_for(config, data_dir=data_dir), subset)
    layout = params_layout(trajectories[0].run.params or {})
    alphas = np.linspace(-0.25, 1.25, points)
    pairs = [
        (f"run {t.run.run_id}: initial → final", t.vectors[0], t.vectors[-1]) for t in trajectories
    ]
    if len(trajectories) > 1:
        a, b = trajectories[0], trajectories[1]
        pairs.append(
            (f"run {a.run.run_id} final → run {b.run.run_id} final", a.vectors[-1], b.vectors[-1])
        )
    found = []
    for label, start, end in pairs:
        start64 = start.astype(np.float64)
        line = Plane("line", start64, np.stack([end - start64, np.zeros_like(start64)]))
        costs = PlaneCosts(config, line, layout)
        values = costs(np.stack([alphas, np.zeros_like(alphas)], axis=1), images, labels)
        found.append(Line(label, alphas.tolist(), values.tolist()))
    return found
