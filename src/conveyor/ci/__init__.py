"""`conveyor ci ...`: the few things a GitHub Actions step needs that are more than one command.

Job outputs and the step summary from the gate, the pull-request comment with `dvc metrics diff` against main,
the data step (DVC remote or demo fetch), and waiting for Argo CD. Each workflow step stays one call."""
