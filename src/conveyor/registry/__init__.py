"""The MLflow model registry: tracking set-up, registration and aliases, and models/ from a registered version."""
