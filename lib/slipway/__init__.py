"""Slipway: a small production ML library for the handwritten digits task.

Modules, from raw data to a served model:

- `slipway.data`: load the digits (or a user's CSV/Parquet), validate the schema,
  split deterministically by seed.
- `slipway.schema`: the table schema (column names, sizes); `slipway.model_uri`:
  model names, aliases and `models:/` URIs. Both import nothing heavy.
- `slipway.preprocessing`: table rows to `(N, 64) float32` features and labels.
- `slipway.models`: a torch `nn.Module` built from a `ModelConfig`; plain model dirs.
- `slipway.training`: the seeded training loop with checkpoints, resume and DDP.
- `slipway.metrics`: accuracy, macro-F1, confusion matrix.
- `slipway.evaluation`: scores on a labelled split, the champion policy.
- `slipway.plots`: the confusion-matrix PNG.
- `slipway.inference`: bounded-memory, sharded batch inference over files.
- `slipway.registry`: MLflow runs, model versions and the champion/challenger aliases.
- `slipway.serving`: the model holder and request decoding of the service.
- `slipway.client`: the service's Python client.
- `slipway.workflows.{train,evaluate,predict}`: what the jobs do, one module each.
- `slipway.pipelines`: the processing -> training -> evaluation -> inference pipeline.
- `slipway.io`: atomic file output.
- `slipway.cli`: the flag, logging and error conventions shared by the jobs.

The package import is kept light (no torch or mlflow) so `--help` stays fast. Each
module is a Bazel target of its own (lib/BUILD.bazel) that declares only the
packages it imports.
"""

__version__ = "0.1.0"
