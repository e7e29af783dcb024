"""The dvc.yaml pipeline on Argo Workflows: the DAG read from dvc.yaml, its rendering, and submitting a run."""
