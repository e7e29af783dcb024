"""The request schema follows params.yaml, and every kind of bad body becomes a 4xx problem that names the field,
the value and what was expected."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conveyor.config import Settings
from conveyor.serve import loading
from conveyor.serve.schema import BadRequest, RequestSchema, parse


@pytest.fixture(scope="module")
def schema(settings: Settings) -> RequestSchema:
    return RequestSchema(settings)


@pytest.fixture
def record(settings: Settings) -> dict[str, Any]:
    return loading.probe_records(settings, rows=1)[0]


def _with_policy(settings: Settings, policy: str) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update={"unknown_category": policy})})


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def _refused(schema: RequestSchema, body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        schema.validate(parse(body))
    return caught.value


def test_record_schema_carries_types_ranges_and_categories(schema: RequestSchema, settings: Settings) -> None:
    spec = schema.record_schema("#/components/schemas/{model}")
    assert spec["additionalProperties"] is False
    assert set(spec["required"]) == set(settings.data.features)
    for name, feature in settings.data.features.items():
        prop = spec["properties"][name]
        choices = prop.get("anyOf", [prop])
        assert ({"type": "null"} in choices) == (feature.max_null_fraction > 0), name
        value = next(c for c in choices if c != {"type": "null"})
        if feature.type == "category":
            assert value["enum"] == feature.values
        else:
            assert value["type"] == ("integer" if feature.type == "int" else "number")
            assert (value["minimum"], value["maximum"]) == (feature.min, feature.max)


def test_body_schema_allows_one_record_or_a_capped_batch(schema: RequestSchema, settings: Settings) -> None:
    one, many = schema.body_schema("#/R")["oneOf"]
    assert one == {"$ref": "#/R"}
    assert many["maxItems"] == settings.serve.max_batch_records


def test_valid_single_and_batch(schema: RequestSchema, record: dict[str, Any], settings: Settings) -> None:
    integral = {k: (float(v) if settings.data.features[k].type == "int" else v) for k, v in record.items()}
    assert schema.validate(record) == ([record], True)
    assert schema.validate(integral) == ([record], True)  # 37.0 is an integer in JSON
    assert schema.validate([record, record]) == ([record, record], False)


def test_nullable_features_accept_null_and_others_do_not(
    schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    for name, feature in settings.data.features.items():
        body = {**record, name: None}
        if feature.max_null_fraction > 0:
            assert schema.validate(body)[0] == [body]
        else:
            problem = _refused(schema, _json(body)).problems[0]
            assert problem.field == f"record.{name}"


# Each case: (how to spoil a valid record, status, field, value shown, words expected in "expected").
def _int_feature(settings: Settings) -> str:
    return next(n for n, f in settings.data.features.items() if f.type == "int")


def _category(settings: Settings) -> str:
    return settings.data.categorical[0]


CASES = {
    "string for a number": (lambda r, n, c: {**r, n: "37"}, 422, "record.{n}", '"37"', "an integer from"),
    "boolean for a number": (lambda r, n, c: {**r, n: True}, 422, "record.{n}", "true", "an integer from"),
    "fraction for an integer": (lambda r, n, c: {**r, n: 37.5}, 422, "record.{n}", "37.5", "an integer from"),
    "above the range": (lambda r, n, c: {**r, n: 10**6}, 422, "record.{n}", "1000000", "an integer from"),
    "below the range": (lambda r, n, c: {**r, n: -1}, 422, "record.{n}", "-1", "an integer from"),
    "unknown category": (lambda r, n, c: {**r, c: "Atlantis"}, 422, "record.{c}", '"Atlantis"', "one of"),
    "number for a category": (lambda r, n, c: {**r, c: 3}, 422, "record.{c}", "3", "one of"),
    "missing field": (lambda r, n, c: {k: v for k, v in r.items() if k != n}, 422, "record.{n}", None, "an integer"),
    "extra field": (lambda r, n, c: {**r, "zodiac": "Leo"}, 422, "record.zodiac", '"Leo"', "only the features"),
    "not an object": (lambda r, n, c: "hello", 422, "body", '"hello"', "a JSON object (one record)"),
    "empty batch": (lambda r, n, c: [], 422, "body", None, "1 to"),
    "batch item not an object": (lambda r, n, c: [r, 7], 422, "records[1]", "7", "a JSON object of features"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_bodies_name_field_value_and_expectation(
    case: str, schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    spoil, status, field, shown, expected = CASES[case]
    number, category = _int_feature(settings), _category(settings)
    problem_body = spoil(record, number, category)
    refused = _refused(schema, _json(problem_body))
    assert refused.status == status
    problem = refused.body()["problems"][0]
    assert problem["field"] == field.format(n=number, c=category)
    assert problem["value"] == shown
    assert expected in problem["expected"]
    assert str(refused).startswith(problem["field"])


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_name_the_field(
    token: str, schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    number = _int_feature(settings)
    body = _json({**record, number: 0}).replace(f'"{number}":0'.encode(), f'"{number}":{token}'.encode())
    problem = _refused(schema, body).problems[0]
    assert (problem.field, problem.sentence().split(" = ")[1].split(" ")[0]) == (f"record.{number}", token)


def test_malformed_json_is_a_400_quoting_the_body(schema: RequestSchema) -> None:
    refused = _refused(schema, b'{"age": 3')
    assert refused.status == 400
    assert refused.problems[0].field == "body"
    assert "valid JSON" in str(refused)


def test_oversized_batch_is_refused_before_validation(
    schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    too_many = settings.serve.max_batch_records + 1
    refused = _refused(schema, _json([record] * too_many))
    assert refused.status == 422
    assert f"is an array of {too_many} records" in str(refused)


def test_every_problem_of_a_batch_is_listed(schema: RequestSchema, record: dict[str, Any], settings: Settings) -> None:
    number = _int_feature(settings)
    refused = _refused(schema, _json([record, {**record, number: "x"}, {**record, number: -5}]))
    assert [p.field for p in refused.problems] == [f"records[1].{number}", f"records[2].{number}"]
    assert "(1 more problems listed)" in str(refused)


def test_map_to_unknown_accepts_unknown_categories(settings: Settings, record: dict[str, Any]) -> None:
    lenient = RequestSchema(_with_policy(settings, "map_to_unknown"))
    category = _category(settings)
    body = {**record, category: "Atlantis"}
    assert lenient.validate(body) == ([body], True)
    spec = lenient.record_schema("#/{model}")["properties"][category]
    known = next(c for c in spec.get("anyOf", [spec]) if c != {"type": "null"})
    assert known["x-known-values"] == settings.data.features[category].values
    refused = _refused(lenient, _json({**record, category: 5}))
    assert refused.problems[0].field == f"record.{category}"
    assert "unknown categories are treated as missing" in refused.problems[0].expected


@pytest.mark.parametrize("depth", [300, 1000, 1023, 5000])
def test_deeply_nested_values_are_refused_not_crashed_on(depth: int, schema: RequestSchema, settings: Settings) -> None:
    number = _int_feature(settings)
    refused = _refused(schema, f'{{"{number}": {"[" * depth}{"]" * depth}}}'.encode())
    assert refused.status in (400, 422)
    assert refused.problems[0].field in ("body", f"record.{number}")
    assert len(refused.body()["problems"][0]["value"]) <= 80


@pytest.mark.parametrize(("token", "shown"), [("1e308", "1e+308"), ("-1e308", "-1e+308"), ("1e20", "1e+20")])
def test_a_huge_float_for_an_integer_is_a_422_echoing_it_as_sent(
    token: str, shown: str, schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    """Issue 13: 1e308 came back as its 309 digits. It is a number far out of the declared range: one sentence."""
    number = _int_feature(settings)
    body = _json({**record, number: 0}).replace(f'"{number}":0'.encode(), f'"{number}":{token}'.encode())
    refused = _refused(schema, body)
    assert refused.status == 422
    low, high = settings.data.features[number].min, settings.data.features[number].max
    assert str(refused) == f"record.{number} = {shown} is invalid: expected an integer from {low:g} to {high:g}."


def test_an_integer_beyond_64_bits_is_shown_by_its_size(
    schema: RequestSchema, record: dict[str, Any], settings: Settings
) -> None:
    number = _int_feature(settings)
    body = _json({**record, number: 0}).replace(f'"{number}":0'.encode(), f'"{number}":{"9" * 400}'.encode())
    refused = _refused(schema, body)
    assert refused.status == 422
    assert refused.body()["problems"][0]["value"] == "an integer of 400 digits"


def test_a_lone_surrogate_key_is_named_as_the_key(schema: RequestSchema, record: dict[str, Any]) -> None:
    """Issue 13: the 422 quoted the whole record. The key is named, escaped so that the answer is valid JSON."""
    for body, field in [
        (_json(record)[:-1] + b',"\\ud800":1}', "record.\\ud800"),
        (b"[" + _json(record) + b"," + _json(record)[:-1] + b',"a\\udc00b":1}]', "records[1].a\\udc00b"),
    ]:
        refused = _refused(schema, body)
        assert refused.status == 422
        assert refused.problems[0].field == field
        assert str(refused).startswith(f"{field} is unknown: expected only the features ")
        assert orjson.loads(orjson.dumps(refused.body()))["problems"][0]["field"] == field
