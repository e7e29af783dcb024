"""Where the pipeline writes. Relative to the working directory, as dvc.yaml declares them."""

from pathlib import Path

REPORTS = Path("reports")
ARTIFACTS = Path("artifacts")
MODELS = Path("models")

TRAINED_MODEL = ARTIFACTS / "model"
TRAIN_INFO = ARTIFACTS / "train.json"
EXPORTED_METADATA = MODELS / "metadata.json"
GATE_SUMMARY = REPORTS / "gate.json"
GATE_TABLE = REPORTS / "gate.md"
GATE_INDEX = REPORTS / "index.html"  # the page a reviewer opens first: the gate table and every check's figures
# The latency verdict alone (passed, predictor): what the gate depends on, since latency is re-measured every run.
LATENCY_VERDICT = REPORTS / "latency.verdict.json"
# `conveyor monitor`: its CheckResult (REPORTS / "monitor.json"), report and metrics (text exposition format).
MONITOR_REPORT = REPORTS / "monitor.html"
MONITOR_METRICS = REPORTS / "monitor.prom"
