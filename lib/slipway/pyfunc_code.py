"""MLflow "models from code": MLflow runs this file to get the model (slipway.pyfunc)."""

from mlflow.models import set_model

from slipway.pyfunc import DigitsClassifier

set_model(DigitsClassifier())
