"""Conveyor: GitOps CI/CD/CT for a tabular model."""
