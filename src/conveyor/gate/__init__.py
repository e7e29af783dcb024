"""The gate: the verdict over every check, its report (Markdown), and publishing a passed model."""
