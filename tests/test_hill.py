"""The cost hill, from the committed fixture store (tests/data/runs.db: the hill plan's five
regimes of logistic regression on the sample, with snapshots) and from hand-made points."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from costhill.config import RunConfig
from costhill.errors import ConfigError, StoreError
from costhill.records import Run
from costhill.results import hill as hills
from costhill.store import Store

FIXTURE = Path(__file__).parent / "data" / "runs.db"


@pytest.fixture
def fixture_store(tmp_path):
    """A writable copy of the fixture (the hill stores the sharpness it measures)."""
    path = tmp_path / "runs.db"
    shutil.copy(FIXTURE, path)
    with Store(path) as store:
        yield store


def _trajectory(vectors: np.ndarray, run_id: int = 1) -> hills.Trajectory:
    run = Run(RunConfig(), "finished", "mini-batch", 64, 100, 2, run_id=run_id)
    return hills.Trajectory(run, list(range(len(vectors))), vectors, [None] * len(vectors))


@pytest.mark.parametrize("plane", ["pca", "endpoints", "random"])
def test_the_hill_at_its_origin_is_the_stored_cost_of_that_point(fixture_store, plane):
    found = hills.compute_hill(
        fixture_store, [3, 5], plane=plane, grid=5, subset=None, with_sharpness=False
    )
    first = found.paths[0]
    at_origin = first.true_costs[0] if plane != "random" else first.true_costs[-1]
    index = 0 if plane != "random" else -1
    assert np.allclose(first.coords[index], 0.0, atol=1e-5)  # the origin is that snapshot
    assert first.surface_costs[index] == pytest.approx(at_origin, rel=1e-5)
    assert np.isfinite(found.surface).all()


def test_projections_reproduce_coordinates_and_in_plane_points_lie_on_it():
    rng = np.random.default_rng(0)
    origin = rng.standard_normal(50)
    basis = rng.standard_normal((2, 50))  # not orthogonal, as a random plane's
    coords = rng.standard_normal((7, 2))
    plane = hills.Plane("random", origin, basis)
    found, off = hills.project(plane, origin + coords @ basis)
    assert np.allclose(found, coords)
    assert np.allclose(off, 0.0, atol=1e-9)
    outside = origin + coords @ basis + rng.standard_normal((7, 50))
    assert (hills.project(plane, outside)[1] > 0.1).all()


def test_endpoint_snapshots_lie_in_the_endpoints_plane(fixture_store):
    trajectories = hills.load_trajectories(fixture_store, [2, 5])
    plane = hills.endpoints_plane(trajectories)
    ends = np.stack(
        [trajectories[0].vectors[0], trajectories[0].vectors[-1], trajectories[1].vectors[-1]]
    )
    _, off = hills.project(plane, ends)
    assert np.allclose(off, 0.0, atol=1e-5)


def test_the_pca_plane_explains_the_pooled_snapshots():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, 20)[:, None]
    line = t * rng.standard_normal(300) + 0.01 * rng.standard_normal((20, 300))
    plane = hills.pca_plane([_trajectory(line)])
    assert plane.explained is not None and plane.explained[0] > 0.95
    assert np.allclose(plane.directions @ plane.directions.T, np.eye(2), atol=1e-8)


def test_a_pure_random_walk_is_flagged_and_a_straight_path_is_not():
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.standard_normal((200, 2000)), axis=0)
    plane = hills.pca_plane([_trajectory(walk)])
    coords, _ = hills.project(plane, walk)
    assert plane.explained is not None and plane.explained[0] < hills.RANDOM_WALK_EXPLAINED
    likeness = hills.random_walk_likeness(coords)
    assert likeness is not None and likeness > hills.RANDOM_WALK_LIKENESS
    t = np.linspace(0, 1, 200)[:, None]
    straight = t * rng.standard_normal(2000) + 0.05 * rng.standard_normal((200, 2000))
    plane = hills.pca_plane([_trajectory(straight)])
    assert plane.explained is not None and plane.explained[0] > hills.RANDOM_WALK_EXPLAINED


@pytest.mark.parametrize("model,hidden", [("mlp", (12, 7)), ("logreg", ()), ("cnn", ())])
def test_the_batched_surface_equals_the_cost_evaluated_point_by_point(sample, model, hidden):
    """The dense models' shortcut (first-layer products once a plane) changes no value."""
    import jax

    from costhill.initializers import make_initializer
    from costhill.models import make_model
    from costhill.records import flatten_params, params_layout, params_vector

    config = RunConfig(model=model, hidden=hidden, dataset="fashion-mnist-sample")
    net = make_model(model, hidden=hidden)
    init = make_initializer("glorot_uniform")
    trees = [
        flatten_params(net.init(key=jax.random.key(k), kernel_init=init, bias_init=init_b))
        for k, init_b in ((0, make_initializer("zeros", for_bias=True)),) * 1
        + (
            (1, make_initializer("normal", for_bias=True)),
            (2, make_initializer("normal", for_bias=True)),
        )
    ]
    layout = params_layout(trees[0])
    vectors = [params_vector(t).astype(np.float64) for t in trees]
    plane = hills.Plane("random", vectors[0], np.stack([vectors[1] * 0.1, vectors[2] * 0.1]))
    images, labels = sample.train.images[:40], sample.train.labels[:40]
    points = np.array([[0.0, 0.0], [0.5, -1.0], [2.0, 0.3]])
    batched = hills.PlaneCosts(config, plane, layout)(points, images, labels)
    loss = hills.training_cost(config, images, labels)
    from costhill.records import params_from_vector, unflatten_params

    for (a, b), value in zip(points, batched, strict=True):
        point = plane.origin + a * plane.directions[0] + b * plane.directions[1]
        direct = float(loss(unflatten_params(params_from_vector(point, layout))))
        assert value == pytest.approx(direct, rel=2e-4)


def test_sharpness_matches_an_exact_eigendecomposition_of_a_small_hessian():
    import jax
    import jax.numpy as jnp

    from costhill.results.sharpness import hessian_trace, top_eigenvalue

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((64, 6)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, 64))
    params = {"w": jnp.asarray(rng.standard_normal((6, 3)), jnp.float32), "b": jnp.zeros(3)}

    def loss(p):
        logits = jnp.tanh(x @ p["w"]) * 3 + p["b"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(64), y])

    flat, unravel = jax.flatten_util.ravel_pytree(params)
    exact = np.linalg.eigvalsh(np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat)))
    top = exact[np.argmax(np.abs(exact))]
    found, _ = top_eigenvalue(loss, params, key=jax.random.key(0), iterations=500, tolerance=1e-7)
    assert found == pytest.approx(top, rel=1e-3)
    # Hutchinson's estimate is unbiased with variance 2·Σ_{i≠j} H_ij² per probe: four standard
    # errors of it.
    hessian = np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat), np.float64)
    off_diagonal = (hessian**2).sum() - (np.diag(hessian) ** 2).sum()
    probes = 2000
    trace = hessian_trace(loss, params, key=jax.random.key(1), probes=probes)
    assert abs(trace - np.trace(hessian)) < 4 * np.sqrt(2 * off_diagonal / probes)
    assert abs(trace - np.trace(hessian)) < 0.1 * np.abs(hessian).sum()


def test_sharpness_is_stored_and_read_back(fixture_store):
    first = hills.compute_hill(fixture_store, [2, 3], grid=3, subset=300)
    again = hills.compute_hill(fixture_store, [2, 3], grid=3, subset=300)
    for a, b in zip(first.paths, again.paths, strict=True):
        assert a.sharpness is not None and b.sharpness is not None
        assert a.sharpness["top_eigenvalue"] == pytest.approx(b.sharpness["top_eigenvalue"])
        assert a.sharpness["top_eigenvalue"] > 0
    assert fixture_store.sharpness(2, examples=300) is not None


def test_runs_without_snapshots_or_of_different_models_are_refused(fixture_store, sample):
    from costhill import train

    plain = train(RunConfig(dataset="fashion-mnist-sample", model="logreg", epochs=1))
    other = train(RunConfig(dataset="fashion-mnist-sample", epochs=1, snapshots=1))
    plain_id, other_id = fixture_store.save(plain), fixture_store.save(other)
    with pytest.raises(StoreError, match="train it with --snapshots K"):
        hills.load_trajectories(fixture_store, [plain_id])
    with pytest.raises(ConfigError, match="differs from run 1 in model"):
        hills.load_trajectories(fixture_store, [1, other_id])
    with pytest.raises(ConfigError, match="name two runs"):
        hills.compute_hill(fixture_store, [1], plane="endpoints", grid=3)


def test_lines_run_from_the_initial_point_to_the_final_one(fixture_store):
    found = hills.lines(fixture_store, [2, 3], points=13, subset=None)
    assert [line.label for line in found][-1] == "run 2 final → run 3 final"
    trajectories = hills.load_trajectories(fixture_store, [2])
    at_zero = found[0].costs[int(np.argmin(np.abs(found[0].alphas)))]
    assert at_zero == pytest.approx(trajectories[0].true_costs[0], rel=1e-5)


def test_hill_from_the_cli_writes_png_and_svg(invoke, tmp_path):
    store = tmp_path / "runs.db"
    shutil.copy(FIXTURE, store)
    out = tmp_path / "hill.png"
    result = invoke(
        "hill", 1, 2, 3, 5, "--grid", 7, "--subset", 500, "--out", out, "--store", store
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000 and out.with_suffix(".svg").exists()
    assert "surface at projection" in result.stdout and "top Hessian eigenvalue" in result.stdout
    line = invoke("hill", 2, 3, "--line", "--out", tmp_path / "line.png", "--store", store)
    assert line.exit_code == 0 and (tmp_path / "line.svg").exists()
    bad = invoke("hill", 1, "--subset", "none", "--out", out, "--store", store)
    assert bad.exit_code == 2 and "expected a number of examples" in bad.stderr
    missing = invoke("hill", 99, "--out", out, "--store", store)
    assert missing.exit_code == 2 and "run 99: not in" in missing.stderr
