"""The store's tables, as SQL, and the column lists the queries share."""

from ..config import DEFAULT_STORE as DEFAULT_STORE

SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    init TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    lr REAL NOT NULL,
    batch_size INTEGER NOT NULL,
    regime TEXT NOT NULL,
    num_train INTEGER NOT NULL,
    steps_per_epoch INTEGER NOT NULL,
    versions TEXT NOT NULL,
    data TEXT NOT NULL,
    epochs INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    compile_seconds REAL NOT NULL DEFAULT 0,
    train_accuracy REAL,
    val_accuracy REAL,
    test_accuracy REAL,
    train_cost REAL,
    test_cost REAL,
    diverged_step INTEGER,
    best_val_accuracy REAL,
    test_at_best_val REAL,
    target_epoch INTEGER,
    target_step INTEGER,
    target_seconds REAL,
    target TEXT
);
CREATE INDEX IF NOT EXISTS runs_config_hash ON runs(config_hash, status);
CREATE TABLE IF NOT EXISTS sweep_members (
    sweep TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (sweep, config_hash)
);
CREATE TABLE IF NOT EXISTS claims (
    config_hash TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    mean_step_cost REAL,
    train_cost REAL,
    train_accuracy REAL,
    val_cost REAL,
    val_accuracy REAL,
    test_cost REAL,
    test_accuracy REAL,
    seconds REAL NOT NULL,
    eval_seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS step_costs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    count INTEGER NOT NULL,
    costs BLOB NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, path)
);
-- version 2: parameter snapshots along a run (the hill's paths) and sharpness at its end
CREATE TABLE IF NOT EXISTS snapshots (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    train_cost REAL,
    layout TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS sharpness (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    examples INTEGER NOT NULL,
    top_eigenvalue REAL,
    trace REAL,
    iterations INTEGER NOT NULL,
    probes INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, examples)
);
-- version 3: what continuing an interrupted run needs, overwritten each epoch, and which
-- process is training a run, so that one left "running" by a dead process shows as interrupted
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat REAL;
CREATE TABLE IF NOT EXISTS training_state (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    layout TEXT NOT NULL,
    params BLOB NOT NULL,
    optimizer_layout TEXT NOT NULL,
    optimizer BLOB NOT NULL
);
-- version 4: what a tuning sweep's pruner judged its trials on, so that compare weighs the
-- pruner's decisions on the same signal (a sweep with no row here was not pruned, or was
-- written before version 4: compare then assumes validation accuracy, the default metric,
-- though such a sweep may have judged validation cost, and a rerun writes its row)
CREATE TABLE IF NOT EXISTS sweep_pruning (
    sweep TEXT PRIMARY KEY,
    pruner TEXT NOT NULL,
    metric TEXT NOT NULL
);
-- version 5: the continuous ranges a random or tuning sweep drew its settings from (by the
-- optimizer whose table set them, '' for the plan's shared axes), so that compare can tell a
-- chosen value at its range's end from one merely the largest drawn
CREATE TABLE IF NOT EXISTS sweep_ranges (
    sweep TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    setting TEXT NOT NULL,
    log INTEGER NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    PRIMARY KEY (sweep, optimizer, setting)
);
"""
SUMMARY_COLUMNS = (
    "epochs steps seconds compile_seconds train_accuracy val_accuracy test_accuracy "
    "train_cost test_cost diverged_step best_val_accuracy test_at_best_val"
).split()
DONE = ("finished", "diverged")  # statuses of runs that ran their course: compared and chosen
# ... and of runs a sweep need not train again: a pruned run stopped where its pruner said
TRAINED = (*DONE, "pruned")
EPOCH_COLUMNS = [
    "epoch",
    "steps",
    "mean_step_cost",
    "train_cost",
    "train_accuracy",
    "val_cost",
    "val_accuracy",
    "test_cost",
    "test_accuracy",
    "seconds",
    "eval_seconds",
]

# What turns a store of schema version N into N + 1, run in one transaction after a backup
# (split into statements at each semicolon outside its comments).
MIGRATIONS = {
    1: SCHEMA[SCHEMA.index("-- version 2") : SCHEMA.index("-- version 3")],
    2: SCHEMA[SCHEMA.index("-- version 3") : SCHEMA.index("-- version 4")],
    3: SCHEMA[SCHEMA.index("-- version 4") : SCHEMA.index("-- version 5")],
    4: SCHEMA[SCHEMA.index("-- version 5") :],
}
