"""Job-level workflows: what each job does, so the entry points stay thin.

One module per job, each its own Bazel target, so a job carries only what its
workflow imports:

- `slipway.workflows.train.train_and_register`: processed data -> trained model ->
  MLflow run, new model version, `challenger` alias.
- `slipway.workflows.evaluate.evaluate_and_promote`: a registered version ->
  test-split report and plot -> `champion` alias if the promotion policy says so.
- `slipway.workflows.predict.predict_with_model`: a registered version -> batch
  predictions over files.
"""
