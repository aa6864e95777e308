"""MLflow's own client, in a process without Slipway: load a model as a pyfunc and predict.

    mlflow_pyfunc MODEL_URI INPUT.npy OUTPUT.json

The tracking URI comes from MLFLOW_TRACKING_URI. Writes {"label": [...],
"probability": [...], "slipway_importable": bool} (whether `slipway` was
importable before the model brought its own code).
"""

import importlib.util
import json
import sys

import mlflow.pyfunc
import numpy as np


def main() -> int:
    uri, source, dest = sys.argv[1:4]
    importable = importlib.util.find_spec("slipway") is not None
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(np.load(source))
    with open(dest, "w") as handle:
        json.dump(
            {
                "label": out["label"].tolist(),
                "probability": out["probability"].tolist(),
                "slipway_importable": importable,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
