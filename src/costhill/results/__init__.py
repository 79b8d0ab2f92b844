"""Results: everything that reads stored runs and shows them (compare, plots, exports,
TensorBoard, MLflow, predictions). Nothing here trains; only ``predictions`` computes with JAX,
and it imports JAX inside the functions that need it."""
