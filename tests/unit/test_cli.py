"""The CLI starts without the pipeline's heavy libraries: the serving image has none of them."""

import subprocess
import sys

PIPELINE_ONLY = ("mlflow", "great_expectations", "evidently", "dvc", "fairlearn", "hera", "matplotlib")


def test_building_the_parser_imports_no_pipeline_library() -> None:
    probe = (
        "import sys; from conveyor.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {PIPELINE_ONLY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
