"""The gated checks. Each is `conveyor.checks.<name>.run(settings) -> CheckResult`, written to
reports/<name>.json; the dvc.yaml stage, the module, the command and the report share the name."""

# Every check the gate reads, in pipeline order, with the help its command shows.
CHECKS: dict[str, str] = {
    "quality": "Great Expectations data-quality suite on the training data",
    "drift": "Evidently drift: newest batch against the training reference",
    "evaluate": "holdout metrics, plots, and champion/challenger comparison",
    "fairness": "fairlearn group metrics per sensitive feature",
    "latency": "CPU time per prediction, throughput and time to ready of the serving predictor",
    "behaviour": "behavioural model tests: invariance, directional expectations, hand-written cases",
}
# These judge the trained model, so their reports must postdate it.
MODEL_CHECKS = ("evaluate", "fairness", "latency", "behaviour")
# Measured afresh on every run (dvc.yaml always_changed): the gate depends on its verdict file, not its figures, so
# a re-measurement that agrees leaves the gate's verdict standing (paths.LATENCY_VERDICT).
REMEASURED = ("latency",)
# A failure here stops the pipeline at once: later steps would consume bad input. The others leave it to the gate.
BLOCKING = ("quality",)
