"""`conveyor validate`: a Great Expectations suite built from params.yaml, run on the training data.

Every expectation comes from the settings: the configured feature columns and the target, their types,
ranges, categories and null allowances, and the `gates.quality` thresholds. GX runs in an ephemeral
context (no project directory, no analytics); the result becomes a CheckResult whose failures are one
sentence each, and the report reports/quality/index.html is rendered here from GX's validation result. The values
the `gates.quality` thresholds limit (row count, label rate, duplicate share) are read from GX's results and judged
by those thresholds, like every other check's, so the gate table shows their margins.

The report is not GX's Data Docs: those load about ten stylesheets and scripts from CDNs, so offline (a downloaded
CI artifact) they render unstyled and they call out whenever opened. The page here is self-contained: every
expectation, its verdict, the observed value and unexpected examples, with the data asset named.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ["GX_ANALYTICS_ENABLED"] = "False"  # read by GX when it is imported; the context config says so too

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from conveyor.checks.html import badge, esc, page, table
from conveyor.checks.result import CheckResult
from conveyor.config import Judgement, Settings, human
from conveyor.data.frames import batches, load_training
from conveyor.paths import REPORTS

CHECK = "quality"
DOCS_DIR = REPORTS / CHECK
PAGE = "index.html"
# Pandas dtypes (and, in object columns, Python value types) that count as numbers.
NUMERIC_TYPES = [
    "int", "float", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
    "UInt64", "Float32", "Float64",
]  # fmt: skip
EXAMPLES = 3  # unexpected values quoted in a failure sentence
EXAMPLE_CHARS = 80  # an unexpected value shown in the report is cut to this length

# The rule each expectation checks, kept in its meta so a result can be turned back into a sentence.
EXISTS, TYPE, RANGE, CATEGORIES, NULLS = "exists", "type", "range", "categories", "nulls"
ROWS, DUPLICATES, LABEL_MIN, LABEL_MAX, POSITIVE_SEEN, BINARY = (
    "rows", "duplicates", "label_rate_min", "label_rate_max", "positive_label_seen", "binary_target",
)  # fmt: skip
# The rules a gates.quality threshold judges from the metrics GX observed (_judgements), not from GX's verdict.
JUDGED = (ROWS, DUPLICATES, LABEL_MIN, LABEL_MAX)


def _tag(expectation: gxe.Expectation, rule: str) -> gxe.Expectation:
    expectation.meta = {"conveyor_rule": rule}
    return expectation


def build_suite(settings: Settings, columns: list[str]) -> gx.ExpectationSuite:
    """The suite for `settings`; `columns` (the frame's) only sets which fields make a record a duplicate."""
    data, gate = settings.data, settings.gates.quality
    target, positive = data.target, data.positive_label
    duplicates, label_min, label_max = gate.duplicate_fraction.max, gate.label_rate.min, gate.label_rate.max
    assert duplicates is not None and label_min is not None and label_max is not None  # config requires them
    expectations = [
        _tag(gxe.ExpectTableRowCountToBeBetween(min_value=gate.rows.min, max_value=gate.rows.max), ROWS),
        _tag(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=columns,
                mostly=1 - duplicates,
                description=f"At most {_pct(duplicates)} of rows have an exact twin",
            ),
            DUPLICATES,
        ),
    ]
    for name, feature in data.features.items():
        expectations.append(_tag(gxe.ExpectColumnToExist(column=name), EXISTS))
        if feature.type == "category":
            expectations.append(
                _tag(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=feature.values), CATEGORIES)
            )
        else:
            expectations += [
                _tag(gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=NUMERIC_TYPES), TYPE),
                _tag(
                    gxe.ExpectColumnValuesToBeBetween(column=name, min_value=feature.min, max_value=feature.max),
                    RANGE,
                ),
            ]
        expectations.append(
            _tag(gxe.ExpectColumnValuesToNotBeNull(column=name, mostly=1 - feature.max_null_fraction), NULLS)
        )
    expectations += [
        _tag(gxe.ExpectColumnToExist(column=target), EXISTS),
        _tag(gxe.ExpectColumnValuesToNotBeNull(column=target), NULLS),
        _tag(gxe.ExpectColumnDistinctValuesToContainSet(column=target, value_set=[positive]), POSITIVE_SEEN),
        _tag(
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=target,
                min_value=2,
                max_value=2,
                description=f"{target} is binary: the positive label {positive!r} and one other value",
            ),
            BINARY,
        ),
        _tag(
            gxe.ExpectColumnValuesToBeInSet(
                column=target,
                value_set=[positive],
                mostly=label_min,
                description=f"At least {_pct(label_min)} of {target} values are {positive!r}",
            ),
            LABEL_MIN,
        ),
        _tag(
            gxe.ExpectColumnValuesToNotBeInSet(
                column=target,
                value_set=[positive],
                mostly=1 - label_max,
                description=f"At most {_pct(label_max)} of {target} values are {positive!r}",
            ),
            LABEL_MAX,
        ),
    ]
    return gx.ExpectationSuite(name=CHECK, expectations=expectations)


def _context() -> Any:
    """An in-memory GX context: no project folder, no Data Docs site, no analytics."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        data_docs_sites={},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suite(frame: pd.DataFrame, suite: gx.ExpectationSuite, asset: str) -> ExpectationSuiteValidationResult:
    """Validate `frame` (named `asset`) against `suite`."""
    context = _context()
    batch = context.data_sources.add_pandas(CHECK).add_dataframe_asset(asset)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name="training",
            data=batch.add_batch_definition_whole_dataframe("whole"),
            suite=context.suites.add(suite),
        )
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=CHECK,
            validation_definitions=[definition],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES},
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": frame})
    (_, validation), *_ = outcome.run_results.items()
    return validation


def _pct(fraction: float) -> str:
    """0.082 -> '8.2%', 0.0011 -> '0.11%', 0 -> '0%'."""
    percent = fraction * 100
    if percent == 0:
        return "0%"
    return f"{percent:.1f}%" if percent >= 1 else f"{percent:.2g}%"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _examples(result: dict[str, Any]) -> str:
    counts = result.get("partial_unexpected_counts") or [
        {"value": v} for v in result.get("partial_unexpected_list") or []
    ]
    shown = ", ".join(_num(c["value"]) for c in counts[:EXAMPLES])
    return f", e.g. {shown}" if shown else ""


def _unexpected(result: dict[str, Any]) -> str:
    """'37 values (0.11%)' out of the non-null values GX looked at."""
    count = result["unexpected_count"]
    fraction = result.get("unexpected_percent", 0.0) / 100
    return f"{count} value{'s' if count != 1 else ''} ({_pct(fraction)})"


def _rate(result: dict[str, Any]) -> float:
    """Share of non-null values that met a set expectation."""
    return 1 - result.get("unexpected_percent", 0.0) / 100


def _sentence(rule: str, kwargs: dict[str, Any], result: dict[str, Any], settings: Settings, labels: list[str]) -> str:
    """One failure sentence for one broken expectation: what was observed, and what was expected.

    `labels` are the distinct target values seen, quoted when the target is not binary."""
    column = kwargs.get("column")
    target, positive = settings.data.target, settings.data.positive_label
    sentences: dict[str, Callable[[], str]] = {
        EXISTS: lambda: f"column {column!r} is missing",
        TYPE: lambda: (
            f"{column}: {_unexpected(result)} are not numbers{_examples(result)}"
            if "unexpected_count" in result
            else f"{column}: column type is {result.get('observed_value')}, expected a number"
        ),
        RANGE: lambda: (
            f"{column}: {_unexpected(result)} outside "
            f"[{_num(kwargs['min_value'])}, {_num(kwargs['max_value'])}]{_examples(result)}"
        ),
        CATEGORIES: lambda: (
            f"{column}: {_unexpected(result)} not among the {len(kwargs['value_set'])} allowed categories"
            f"{_examples(result)}"
        ),
        NULLS: lambda: (
            f"{column}: {_pct(result['unexpected_percent'] / 100)} null > "
            f"{_pct(round(1 - kwargs.get('mostly', 1.0), 12))} allowed"
        ),
        POSITIVE_SEEN: lambda: f"{target}: the positive label {positive!r} never occurs{_seen(labels)}",
        BINARY: lambda: (
            f"{target}: {result.get('observed_value')} distinct value{'s' if result.get('observed_value') != 1 else ''}"
            f", expected exactly 2 (the positive label {positive!r} and one other){_seen(labels)}"
        ),
    }
    return sentences[rule]()


def _rule(outcome: ExpectationValidationResult) -> str:
    return outcome.expectation_config.meta["conveyor_rule"]


def _error(outcome: ExpectationValidationResult) -> str | None:
    """The message of an exception GX caught while evaluating `outcome`, if any.

    GX reports either one exception (`raised_exception`) or a mapping of metric id -> exception."""
    info = outcome.exception_info or {}
    if "raised_exception" in info:
        return (info.get("exception_message") or "an error").strip() if info["raised_exception"] else None
    for value in info.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"]).strip()
    return None


def _seen(labels: list[str]) -> str:
    shown = ", ".join(repr(v) for v in labels[:EXAMPLES])
    return f"; seen: {shown}{', ...' if len(labels) > EXAMPLES else ''}" if labels else ""


def _failures(outcomes: list[ExpectationValidationResult], settings: Settings, labels: list[str]) -> list[str]:
    """One sentence per broken expectation, leaving out the ones a missing column or a wrong type explains and
    the ones a gates.quality threshold judges (_judgements says those)."""
    missing = {o.expectation_config.kwargs["column"] for o in outcomes if _rule(o) == EXISTS and not o.success}
    mistyped = {o.expectation_config.kwargs["column"] for o in outcomes if _rule(o) == TYPE and not o.success}
    failures = []
    for outcome in outcomes:
        if outcome.success:
            continue
        rule, kwargs = _rule(outcome), outcome.expectation_config.kwargs
        column = kwargs.get("column")
        if (column in missing and rule != EXISTS) or (column in mistyped and rule == RANGE):
            continue
        error = _error(outcome)
        if error:
            failures.append(f"{column or 'table'}: the {rule} check could not run ({error})")
            continue
        if rule in JUDGED:
            continue
        failures.append(_sentence(rule, kwargs, outcome.result, settings, labels))
    return failures


def _metrics(outcomes: list[ExpectationValidationResult], statistics: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "expectations_evaluated": statistics["evaluated_expectations"],
        "expectations_failed": statistics["unsuccessful_expectations"],
        "null_fraction": {},
    }
    for outcome in outcomes:
        rule, result = _rule(outcome), outcome.result
        if _error(outcome):
            continue
        if rule == ROWS:
            metrics["rows"] = result["observed_value"]
        elif rule == DUPLICATES:
            metrics["duplicate_fraction"] = result["unexpected_percent"] / 100
        elif rule == LABEL_MIN:
            metrics["label_rate"] = _rate(result)
        elif rule == NULLS:
            metrics["null_fraction"][outcome.expectation_config.kwargs["column"]] = result["unexpected_percent"] / 100
    return metrics


def _judgements(metrics: dict[str, Any], settings: Settings) -> list[Judgement]:
    """Each gates.quality threshold judging the value GX observed; one GX could not observe is not judged."""
    thresholds = settings.gates.quality.thresholds()
    return [threshold.judge(name, metrics[name]) for name, threshold in thresholds.items() if name in metrics]


def _thresholds(settings: Settings) -> dict[str, Any]:
    return {
        **settings.gates.quality.model_dump(),
        "max_null_fraction": {
            **{name: f.max_null_fraction for name, f in settings.data.features.items()},
            settings.data.target: 0.0,
        },
    }


def _rule_text(rule: str, config: Any) -> str:
    """What an expectation requires, in words."""
    kwargs, column = config.kwargs, config.kwargs.get("column")
    mostly = kwargs.get("mostly", 1.0)
    if config.description:
        return str(config.description)
    if rule == ROWS:
        return f"{human(kwargs['min_value'], 0)} to {human(kwargs['max_value'], 0)} rows"
    if rule == EXISTS:
        return f"column {column} exists"
    if rule == TYPE:
        return "numbers (an integer or a float dtype)"
    if rule == RANGE:
        return f"between {_num(kwargs['min_value'])} and {_num(kwargs['max_value'])}"
    if rule == CATEGORIES:
        values = [str(v) for v in kwargs["value_set"]]
        shown = ", ".join(values[:6]) + (f" and {len(values) - 6} more" if len(values) > 6 else "")
        return f"one of {len(values)} categories: {shown}"
    if rule == NULLS:
        return "no nulls" if mostly >= 1 else f"at most {_pct(round(1 - mostly, 12))} null"
    if rule == POSITIVE_SEEN:
        return f"the positive label {kwargs['value_set'][0]!r} occurs"
    return config.type.replace("_", " ")


def _observed(outcome: ExpectationValidationResult) -> str:
    """What GX measured: the observed value, or how many values broke the rule out of how many."""
    result = outcome.result or {}
    if "unexpected_count" in result:
        checked = result.get("element_count", 0) - result.get("missing_count", 0)
        text = f"{human(result['unexpected_count'], 0)} of {human(checked, 0)} values unexpected"
        return f"{text} ({_pct(result.get('unexpected_percent', 0.0) / 100)})"
    value = result.get("observed_value")
    if value is not None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return human(value, 4)
        if isinstance(value, list):
            return ", ".join(map(str, value[:8])) + (" ..." if len(value) > 8 else "")
        return str(value)
    if _rule(outcome) == EXISTS:
        return "present" if outcome.success else "absent"
    return "met" if outcome.success else "not met"


def _unexpected_examples(result: dict[str, Any]) -> str:
    """Up to EXAMPLES unexpected values with their counts among GX's sample; a long one (a duplicated row) cut."""
    counts = result.get("partial_unexpected_counts") or [
        {"value": v, "count": 1} for v in result.get("partial_unexpected_list") or []
    ]
    shown = []
    for c in counts[:EXAMPLES]:
        text = _num(c["value"])
        text = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."
        shown.append(f"{text} ({c['count']} times)" if c.get("count", 1) > 1 else text)
    return ", ".join(shown)


def _asset(settings: Settings) -> str:
    """The data the check reads, as a reviewer would name it."""
    ingested = len(batches(settings))
    return f"{settings.data.path}" + (
        f" + {ingested} ingested batch{'es' if ingested != 1 else ''}" if ingested else ""
    )


def render(result: CheckResult, validation: ExpectationSuiteValidationResult, asset: str, rows: int) -> str:
    """The quality report: the gated values, the failures, then every expectation GX evaluated with its result."""
    stats = validation.statistics
    judged = table(
        ["verdict", "measure", "value", "passing range"],
        (
            [badge(j.passed), esc(j.label), esc(j.shown(j.value) + (f" {j.unit}" if j.unit else "")), esc(j.rule())]
            for j in result.judgements
        ),
        numeric=[2],
        failed=[not j.passed for j in result.judgements],
    )
    messages = "".join(f"<li>{esc(s)}</li>" for s in result.failures)
    outcomes = list(validation.results)
    expectation_rows = []
    for outcome in outcomes:
        config = outcome.expectation_config
        error = _error(outcome)
        examples = _unexpected_examples(outcome.result or {})
        expectation_rows.append(
            [
                badge(bool(outcome.success)),
                esc(config.kwargs.get("column") or "(table)"),
                f"<code>{esc(config.type)}</code>",
                esc(_rule_text(_rule(outcome), config)),
                esc(f"could not run: {error}" if error else _observed(outcome)),
                esc(examples) if examples else '<span class="muted">none</span>',
            ]
        )
    body = [
        "<section><h2>Summary</h2>",
        f"<p>{badge(result.passed, 'passed', 'FAILED')} Data asset: <b>{esc(asset)}</b>, {human(rows, 0)} rows. "
        f"{stats['successful_expectations']} of {stats['evaluated_expectations']} expectations met "
        f"(Great Expectations {esc(validation.meta.get('great_expectations_version', ''))}).</p>",
        judged,
        f'<h3>Failures</h3><ul class="messages">{messages}</ul>' if messages else "<p>No failure.</p>",
        "</section>",
        "<section><h2>Every expectation</h2>",
        table(
            ["result", "column", "expectation", "expected", "observed", "unexpected examples"],
            expectation_rows,
            failed=[not o.success for o in outcomes],
        ),
        "</section>",
    ]
    when = validation.meta.get("validation_time")
    subtitle = f"Great Expectations validation of {asset}" + (f", {when:%Y-%m-%d %H:%M UTC}" if when else "")
    return page(f"Data quality: {'passed' if result.passed else 'FAILED'}", subtitle, "\n".join(body))


def validate(
    frame: pd.DataFrame, settings: Settings, docs_dir: Path = DOCS_DIR, asset: str = "training data"
) -> CheckResult:
    """Run the suite on `frame` (the data `asset`); the CheckResult (not written) and its report in `docs_dir`."""
    validation = _run_suite(frame, build_suite(settings, list(frame.columns)), asset)
    outcomes = list(validation.results)
    target = settings.data.target
    labels = sorted(map(str, frame[target].dropna().unique())) if target in frame else []
    metrics = _metrics(outcomes, validation.statistics)
    result = CheckResult.judged(
        CHECK,
        _judgements(metrics, settings),
        _failures(outcomes, settings, labels),
        metrics=metrics,
        thresholds=_thresholds(settings),
    )
    if docs_dir.exists():
        shutil.rmtree(docs_dir)  # one run's page only: the folder is this check's output
    docs_dir.mkdir(parents=True)
    report = docs_dir / PAGE
    report.write_text(render(result, validation, asset, len(frame)))
    return replace(result, artifacts=[report.as_posix()])


def run(settings: Settings) -> CheckResult:
    """`conveyor quality`: check the training data, write reports/quality.json and reports/quality/index.html."""
    result = validate(load_training(settings), settings, asset=_asset(settings))
    result.write()
    return result
