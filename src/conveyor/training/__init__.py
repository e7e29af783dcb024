"""Training: the model builder, the fit logged to MLflow, and the fairness mitigation (the decision policy)."""
