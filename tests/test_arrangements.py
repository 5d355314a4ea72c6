"""The arrangements validator: what a partnership lead notices when a file is right or wrong."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from safeguarding import arrangements
from safeguarding.arrangements import (
    MAX_DOCUMENT_BYTES,
    ArrangementsError,
    ValidationIssue,
    canonical_json,
    content_hash,
    load,
    parse_document,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "schemas" / "arrangements.schema.json"
RIVERFORD_FILE = ROOT / "schemas" / "examples" / "riverford-and-vale.json"
NORTHMOOR_FILE = ROOT / "schemas" / "examples" / "northmoor-and-eastholme.yaml"
EXAMPLES = [RIVERFORD_FILE, NORTHMOOR_FILE]


@pytest.fixture(scope="module")
def riverford_doc() -> dict[str, Any]:
    return load(RIVERFORD_FILE.read_bytes(), filename=RIVERFORD_FILE.name)


@pytest.fixture
def doc(riverford_doc: dict[str, Any]) -> dict[str, Any]:
    """A fresh, valid copy to break."""
    return copy.deepcopy(riverford_doc)


def issues_at(issues: list[ValidationIssue], path: str) -> list[ValidationIssue]:
    return [i for i in issues if i.path == path]


def only_issue_at(doc: dict[str, Any], path: str) -> ValidationIssue:
    found = issues_at(validate(doc), path)
    assert len(found) == 1, validate(doc)
    return found[0]


# --------------------------------------------------------------------------------------------------
# The examples and the schema


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    doc = load(path.read_bytes(), filename=path.name)
    assert validate(doc) == []
    assert doc["schema_version"] == "1.0"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load_without_a_filename(path: Path) -> None:
    assert load(path.read_text(encoding="utf-8"))["partnership"]["id"] == path.stem


def test_examples_differ_in_the_open_points() -> None:
    rv = load(RIVERFORD_FILE.read_bytes(), filename=RIVERFORD_FILE.name)
    ne = load(NORTHMOOR_FILE.read_bytes(), filename=NORTHMOOR_FILE.name)
    assert rv["rapid_review"]["deadline"]["clock_start"] == "la_becomes_aware"
    assert ne["rapid_review"]["deadline"]["clock_start"] == "notification_sent"
    assert rv["calendar"]["counting"]["before_event_rule"] == "nth_working_day_before_event"
    assert ne["calendar"]["counting"]["before_event_rule"] == "clear_days_both_ends"
    assert ne["calendar"]["counting"]["month_deadline_on_non_working_day"] == "roll_forward"
    assert [d["date"] for d in ne["calendar"]["extra_closure_days"]] == ["2026-12-24", "2026-12-31"]
    assert len(ne["partnership"]["local_authority_areas"]) == 2
    police = [p for p in ne["safeguarding_partners"] if p["type"] == "chief_officer_of_police"]
    assert len(police) == 2
    rv_stage_clocks = {s["clock_start"] for s in rv["escalation"]["ladders"][0]["stages"]}
    ne_stage_clocks = {s["clock_start"] for s in ne["escalation"]["ladders"][0]["stages"]}
    assert rv_stage_clocks == {"previous_stage_deadline"}
    assert ne_stage_clocks == {"previous_stage_start"}


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(raw)
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert raw["$id"] == arrangements.SCHEMA_ID
    assert raw["title"]
    assert raw["properties"]["schema_version"]["const"] == "1.0"


def _walk(node: Any, path: str = "#") -> Any:
    """Every schema node that describes data (skipping predicate-only subschemas: if, contains, not)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("if", "contains", "not", "const", "enum", "default", "examples"):
                continue
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from _walk(sub, f"{path}/{key}/{name}")
            else:
                yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}/{i}")


def test_every_property_has_a_title_and_a_description() -> None:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    missing = []
    for path, node in _walk(raw):
        for name, prop in node.get("properties", {}).items():
            if "/allOf/" in path:
                continue
            for word in ("title", "description"):
                if not (isinstance(prop, dict) and isinstance(prop.get(word), str) and prop[word].strip()):
                    missing.append(f"{path}/properties/{name}: {word}")
    assert missing == []


def test_every_object_refuses_unknown_keys() -> None:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    open_objects = [path for path, node in _walk(raw)
                    if node.get("type") == "object" and node.get("additionalProperties") is not False
                    and "/allOf/" not in path]
    assert open_objects == []


def test_schema_ids_and_user_refs_patterns() -> None:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert raw["$defs"]["id"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,62}$"
    assert raw["$defs"]["user_ref"]["pattern"] == "^u-[a-z0-9-]+$"
    counting = raw["properties"]["calendar"]["properties"]["counting"]
    assert set(counting["properties"]) == {
        "trigger_day_counts", "before_event_rule", "month_overflow", "month_deadline_on_non_working_day",
        "deadline_end_time"}
    # every rule is stated, but a month deadline on a non-working day may be left to its default: roll forward
    assert set(counting["properties"]) - set(counting["required"]) == {"month_deadline_on_non_working_day"}
    assert counting["properties"]["month_deadline_on_non_working_day"]["default"] == "roll_forward"
    for name, prop in counting["properties"].items():
        assert "Proposed default" in prop["description"], name


def test_schema_is_a_copy_and_the_validator_is_built_once() -> None:
    first = arrangements.schema()
    first["title"] = "changed"
    assert arrangements.schema()["title"] != "changed"
    assert arrangements._validator() is arrangements._validator()


def test_the_validator_never_fetches_from_the_network() -> None:
    registry = arrangements._validator()._registry
    with pytest.raises(Exception, match=r"example\.com"):
        registry.get_or_retrieve("https://example.com/other.schema.json")
    assert registry.get_or_retrieve(arrangements.SCHEMA_ID).value.contents["title"]


# --------------------------------------------------------------------------------------------------
# Reading files


def test_malformed_json_reports_line_and_column() -> None:
    text = '{\n  "schema_version": "1.0",\n  "partnership": {"id": "x"\n  "name": "y"}\n}'
    with pytest.raises(ArrangementsError) as caught:
        parse_document(text, filename="arr.json")
    (issue,) = caught.value.issues
    assert issue.path == ""
    assert "JSON" in issue.message
    assert "line 4, column 3" in issue.message
    assert issue.value == '"name": "y"}'


def test_trailing_comma_in_json_is_explained() -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document('{"a": 1,}')
    assert "line 1, column 9" in caught.value.issues[0].message
    assert "comma" in caught.value.issues[0].message


def test_malformed_yaml_reports_line_and_column() -> None:
    text = "schema_version: '1.0'\npartnership:\n  id: x\n   name: y\n"
    with pytest.raises(ArrangementsError) as caught:
        parse_document(text, filename="arr.yaml")
    (issue,) = caught.value.issues
    assert "YAML" in issue.message
    assert "line 4, column 8" in issue.message


def test_yaml_tab_indentation_is_explained() -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document("a:\n\t- b\n", filename="arr.yml")
    assert "tabs" in caught.value.issues[0].message
    assert "line 2, column 1" in caught.value.issues[0].message


def test_yaml_dates_stay_strings() -> None:
    doc = parse_document("day: 2026-12-24\nwhen: 2026-12-24T09:00:00\ntagged: !!timestamp 2027-01-01\n",
                         content_type="application/yaml")
    assert doc == {"day": "2026-12-24", "when": "2026-12-24T09:00:00", "tagged": "2027-01-01"}
    northmoor = parse_document(NORTHMOOR_FILE.read_bytes(), filename=NORTHMOOR_FILE.name)
    assert all(isinstance(d["date"], str) for d in northmoor["calendar"]["extra_closure_days"])


def test_yaml_and_json_of_the_same_arrangements_hash_the_same(riverford_doc: dict[str, Any]) -> None:
    as_yaml = yaml.safe_dump(riverford_doc, allow_unicode=True, sort_keys=False)
    from_yaml = load(as_yaml, filename="riverford.yaml")
    assert from_yaml == riverford_doc
    assert content_hash(from_yaml) == content_hash(riverford_doc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("a: 1\na: 2\n", "appears twice"),
        ("yes: 1\n", "quotes"),
        ("a: .nan\n", "number"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!set {x, y}\n", "!!set"),
        ("a: 1\n---\nb: 2\n", "more than one document"),
    ],
)
def test_yaml_features_that_would_surprise_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document(text, filename="arr.yaml")
    assert expected in caught.value.issues[0].message
    assert "line" in caught.value.issues[0].message


def test_duplicate_json_key_is_refused_with_its_path() -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document('{"chair": {"held_by_partner": "a", "held_by_partner": "b"}}')
    (issue,) = caught.value.issues
    assert issue.path == "/chair/held_by_partner"
    assert "appears twice" in issue.message


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1e999}'])
def test_json_numbers_that_are_not_numbers_are_refused(text: str) -> None:
    with pytest.raises(ArrangementsError, match="number"):
        parse_document(text, filename="a.json")


@pytest.mark.parametrize("text", ["[1, 2]", "- a\n- b\n", '"just text"', "42"])
def test_top_level_must_be_an_object(text: str) -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document(text)
    assert "top level" in caught.value.issues[0].message


@pytest.mark.parametrize("text", ["", "   \n", b"", "# only a comment\n"])
def test_empty_file(text: str | bytes) -> None:
    with pytest.raises(ArrangementsError, match="empty"):
        parse_document(text)


def test_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ArrangementsError) as caught:
        parse_document(b'{"name": "Caf\xe9"}')
    assert "UTF-8" in caught.value.issues[0].message
    assert "0xe9" in caught.value.issues[0].message


def test_utf16_file_is_explained() -> None:
    with pytest.raises(ArrangementsError, match="UTF-16"):
        parse_document('{"a": 1}'.encode("utf-16"))


def test_utf8_byte_order_mark_is_accepted() -> None:
    assert parse_document(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert parse_document('\ufeff{"a": 1}') == {"a": 1}


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ArrangementsError, match="nested too deeply"):
        parse_document("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArrangementsError, match="nested too deeply"):
        parse_document('{"a": ' * 100 + "1" + "}" * 100)


@pytest.mark.parametrize("as_bytes", [True, False])
def test_a_5mb_document_is_refused_quickly_with_its_size(as_bytes: bool) -> None:
    text = '{"padding": "' + "x" * 5_000_000 + '"}'
    data: str | bytes = text.encode() if as_bytes else text
    started = time.perf_counter()
    with pytest.raises(ArrangementsError) as caught:
        load(data, filename="big.json")
    elapsed = time.perf_counter() - started
    (issue,) = caught.value.issues
    assert "too large" in issue.message
    assert "5,000,015 bytes" in issue.message
    assert f"{MAX_DOCUMENT_BYTES:,} bytes" in issue.message
    assert elapsed < 0.5


def test_size_limit_counts_bytes_not_characters() -> None:
    text = '{"a": "' + "é" * 600_000 + '"}'  # 600,000 characters, 1.2 MB in UTF-8
    with pytest.raises(ArrangementsError, match="too large"):
        parse_document(text)


def test_format_is_chosen_by_filename_then_content_type() -> None:
    yaml_text = "a: 1\n"
    with pytest.raises(ArrangementsError, match="JSON"):
        parse_document(yaml_text, filename="arr.json")
    with pytest.raises(ArrangementsError, match="JSON"):
        parse_document(yaml_text, content_type="application/json; charset=utf-8")
    assert parse_document(yaml_text, content_type="text/yaml") == {"a": 1}
    assert parse_document(yaml_text, content_type="text/plain") == {"a": 1}


# --------------------------------------------------------------------------------------------------
# Schema mistakes, in plain English


def test_unknown_key_suggests_the_closest_allowed_one(doc: dict[str, Any]) -> None:
    sin = doc["serious_incident_notification"]
    sin["dedline"] = sin.pop("deadline")
    issues = validate(doc)
    unknown = only_issue_at(doc, "/serious_incident_notification/dedline")
    assert "unknown key ‘dedline’" in unknown.message
    assert "did you mean ‘deadline’" in unknown.message
    assert "notifier_role" in unknown.message  # the allowed keys are listed
    missing = issues_at(issues, "/serious_incident_notification/deadline")
    assert len(missing) == 1
    assert missing[0].message.startswith("‘deadline’")
    assert missing[0].message.endswith("is missing")
    assert missing[0].value is None


def test_missing_counting_rule_is_named(doc: dict[str, Any]) -> None:
    del doc["calendar"]["counting"]["month_overflow"]
    issue = only_issue_at(doc, "/calendar/counting/month_overflow")
    assert "‘month_overflow’" in issue.message
    assert "missing" in issue.message


@pytest.mark.parametrize(
    ("path", "bad", "expected"),
    [
        (("serious_incident_notification", "max_children_per_notification"), "four", "a whole number"),
        (("serious_incident_notification", "max_children_per_notification"), 2.5, "a whole number"),
        (("chair", "rotation", "enabled"), "yes", "should be true or false"),
        (("roles",), {"id": "x"}, "should be a list"),
        (("partnership", "name"), 7, "should be text"),
        (("calendar",), [], "should be a group of settings"),
        (("rapid_review", "reminders", "working_days_before_due"), True, "should be a whole number"),
    ],
)
def test_wrong_types(doc: dict[str, Any], path: tuple[str, ...], bad: Any, expected: str) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad
    issue = only_issue_at(doc, "/" + "/".join(path))
    assert expected in issue.message
    assert issue.value == bad


def test_enum_lists_the_allowed_values_and_suggests_one(doc: dict[str, Any]) -> None:
    doc["calendar"]["counting"]["before_event_rule"] = "nth_working_day_before"
    issue = only_issue_at(doc, "/calendar/counting/before_event_rule")
    assert "nth_working_day_before_event, clear_days_both_ends" in issue.message
    assert "did you mean ‘nth_working_day_before_event’" in issue.message


def test_enum_with_wrong_type_gives_one_message(doc: dict[str, Any]) -> None:
    doc["calendar"]["counting"]["month_overflow"] = 3
    issue = only_issue_at(doc, "/calendar/counting/month_overflow")
    assert "clamp_to_month_end" in issue.message


def test_clock_start_lists_only_the_choices_for_that_field(doc: dict[str, Any]) -> None:
    doc["rapid_review"]["deadline"]["clock_start"] = "decision_to_initiate"
    issue = only_issue_at(doc, "/rapid_review/deadline/clock_start")
    assert "la_becomes_aware, notification_sent" in issue.message
    assert "planned_publication" not in issue.message
    doc["serious_incident_notification"]["deadline"]["unit"] = "calendar_months"
    issue = only_issue_at(doc, "/serious_incident_notification/deadline/unit")
    assert issue.message == "‘calendar_months’ isn't allowed here: it must be ‘working_days’"


def test_impossible_date_is_rejected_with_its_path(doc: dict[str, Any]) -> None:
    assert not Draft202012Validator.FORMAT_CHECKER.conforms("2026-02-30", "date")
    doc["calendar"]["extra_closure_days"] = [{"date": "2026-02-30", "reason": "Typo"}]
    issue = only_issue_at(doc, "/calendar/extra_closure_days/0/date")
    assert issue.message == "‘2026-02-30’ is not a real date"
    assert issue.value == "2026-02-30"


def test_date_in_the_wrong_format(doc: dict[str, Any]) -> None:
    doc["calendar"]["extra_closure_days"] = [{"date": "24/12/2026", "reason": "Christmas Eve"}]
    issue = only_issue_at(doc, "/calendar/extra_closure_days/0/date")
    assert "YYYY-MM-DD" in issue.message


def test_negative_time_limit(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][0]["time_limit_working_days"] = -2
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/0/time_limit_working_days")
    assert issue.message == "must be at least 1, not -2"
    assert issue.value == -2


def test_zero_day_deadline(doc: dict[str, Any]) -> None:
    doc["serious_incident_notification"]["deadline"]["value"] = 0
    assert "at least 1" in only_issue_at(doc, "/serious_incident_notification/deadline/value").message


def test_too_many_children_per_notification(doc: dict[str, Any]) -> None:
    doc["serious_incident_notification"]["max_children_per_notification"] = 5
    issue = only_issue_at(doc, "/serious_incident_notification/max_children_per_notification")
    assert issue.message == "must be at most 4, not 5"


@pytest.mark.parametrize(
    ("path", "bad", "expected"),
    [
        (("partnership", "id"), "Riverford Vale", "lower-case letters"),
        (("partnership", "local_authority_areas", 0), "W06000001", "ONS"),
        (("calendar", "counting", "deadline_end_time"), "24:00", "HH:MM"),
        (("roles", 0, "members", 0), "Jane Smith", "‘u-’"),
        (("yearly_report", "period", "start"), "4-1", "MM-DD"),
        (("partnership", "arrangements_published_url"), "example.org", "https://"),
    ],
)
def test_patterns_are_explained(doc: dict[str, Any], path: tuple[Any, ...], bad: str, expected: str) -> None:
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad
    issue = only_issue_at(doc, arrangements._ptr(*path))
    assert expected in issue.message
    assert f"‘{bad}’" in issue.message


def test_duplicate_list_entries(doc: dict[str, Any]) -> None:
    doc["roles"][1]["members"].append("u-rv-business-manager")
    issue = only_issue_at(doc, f"/roles/1/members/{len(doc['roles'][1]['members']) - 1}")
    assert "more than once" in issue.message


def test_wrong_schema_version(doc: dict[str, Any]) -> None:
    doc["schema_version"] = 1
    assert only_issue_at(doc, "/schema_version").message == "must be ‘1.0’, not 1"


def test_missing_police_partner(doc: dict[str, Any]) -> None:
    doc["safeguarding_partners"] = [p for p in doc["safeguarding_partners"]
                                    if p["type"] != "chief_officer_of_police"]
    doc["chair"]["rotation"]["order"].remove("vale-police")
    doc["rapid_review"]["signoff_required_from"].remove("vale-police")
    issues = validate(doc)
    assert [i.path for i in issues] == ["/safeguarding_partners"]
    assert "no chief officer of police" in issues[0].message


def test_empty_partner_list_names_all_three_types(doc: dict[str, Any]) -> None:
    doc["safeguarding_partners"] = []
    messages = " ".join(i.message for i in issues_at(validate(doc), "/safeguarding_partners"))
    for kind in ("no local authority", "no integrated care board", "no chief officer of police"):
        assert kind in messages


def test_several_police_forces_and_icbs_are_allowed(doc: dict[str, Any]) -> None:
    extra = copy.deepcopy(doc["safeguarding_partners"][2])
    extra["id"] = "transport-police"
    extra_icb = copy.deepcopy(doc["safeguarding_partners"][1])
    extra_icb["id"] = "second-icb"
    doc["safeguarding_partners"] += [extra, extra_icb]
    assert validate(doc) == []


# --------------------------------------------------------------------------------------------------
# Rules a schema can't express


def test_ladder_stage_with_a_missing_role(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][1]["handler_role"] = "line_manager"
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/1/handler_role")
    assert issue.value == "line_manager"
    assert "no role with the id ‘line_manager’" in issue.message
    assert "did you mean ‘line_managers’" in issue.message


@pytest.mark.parametrize(
    "path",
    [
        ("relevant_agencies", 0, "contact_role"),
        ("serious_incident_notification", "notifier_role"),
        ("rapid_review", "coordinator_role"),
        ("rapid_review", "decision_role"),
        ("lcspr", "reviewer_commissioning_role"),
        ("escalation", "ladders", 1, "business_unit_role"),
        ("escalation", "ladders", 1, "scrutineer_role"),
        ("escalation", "ladders", 0, "stages", 3, "on_timeout", "notify_role"),
        ("independent_scrutiny", "scrutineer_role"),
        ("data_protection", "reidentification_key_role"),
        ("learning", "learning_lead_role"),
    ],
)
def test_every_role_reference_is_checked(doc: dict[str, Any], path: tuple[Any, ...]) -> None:
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = "nobody"
    issue = only_issue_at(doc, arrangements._ptr(*path))
    assert "no role with the id ‘nobody’" in issue.message


def test_duplicate_ids_partners_and_agencies_share_a_namespace(doc: dict[str, Any]) -> None:
    doc["relevant_agencies"][3]["id"] = "vale-icb"
    issue = only_issue_at(doc, "/relevant_agencies/3/id")
    assert "already used at /safeguarding_partners/1" in issue.message


def test_duplicate_role_ids(doc: dict[str, Any]) -> None:
    doc["roles"].append(copy.deepcopy(doc["roles"][0]))
    issue = only_issue_at(doc, f"/roles/{len(doc['roles']) - 1}/id")
    assert "already used at /roles/0" in issue.message


def test_duplicate_ladder_and_category_ids(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][1]["id"] = "professional-disagreement"
    doc["serious_incident_notification"]["categories"][1]["id"] = "death_abuse_neglect"
    issues = validate(doc)
    assert issues_at(issues, "/escalation/ladders/1/id")
    assert issues_at(issues, "/serious_incident_notification/categories/1/id")


def test_notifier_must_be_a_local_authority(doc: dict[str, Any]) -> None:
    doc["serious_incident_notification"]["notifier_partner"] = "vale-police"
    issue = only_issue_at(doc, "/serious_incident_notification/notifier_partner")
    assert "local authority" in issue.message


def test_partner_reference_to_an_agency(doc: dict[str, Any]) -> None:
    doc["chair"]["held_by_partner"] = "cafcass"
    issue = only_issue_at(doc, "/chair/held_by_partner")
    assert "is a relevant agency, not a safeguarding partner" in issue.message


def test_rotation_must_include_the_current_chair(doc: dict[str, Any]) -> None:
    doc["chair"]["rotation"]["order"] = ["vale-icb", "vale-police"]
    assert "isn't in the rotation order" in only_issue_at(doc, "/chair/rotation/order").message


def test_education_members_must_be_relevant_agencies(doc: dict[str, Any]) -> None:
    doc["education_representation"]["strategic_members"].append("riverford-academy")
    issue = only_issue_at(doc, "/education_representation/strategic_members/3")
    assert "no relevant agency with the id ‘riverford-academy’" in issue.message


def test_signoff_partners_must_exist(doc: dict[str, Any]) -> None:
    doc["rapid_review"]["signoff_required_from"][2] = "vale-polise"
    issue = only_issue_at(doc, "/rapid_review/signoff_required_from/2")
    assert "did you mean ‘vale-police’" in issue.message


def test_ladder_stages_are_numbered_in_order(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][2]["stage"] = 4
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/2/stage")
    assert "expected stage 3" in issue.message


def test_urgent_start_stage_must_exist(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][1]["urgent_start_stage"] = 5
    issue = only_issue_at(doc, "/escalation/ladders/1/urgent_start_stage")
    assert issue.message == "there is no stage 5: this ladder has 3 stages"


def test_last_stage_cannot_escalate(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][3]["on_timeout"] = {"action": "escalate"}
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/3/on_timeout/action")
    assert "last stage can't escalate" in issue.message


def test_a_stage_counted_from_the_previous_start_must_outlast_the_previous_stage(doc: dict[str, Any]) -> None:
    # Riverford's disagreement ladder: stage 2 has 5 working days, stage 3 has 2. Counted from stage 2's deadline
    # that is fine; counted from stage 2's START, stage 3 would be due before it opens (stage 2 runs 5 days).
    stages = doc["escalation"]["ladders"][0]["stages"]
    assert arrangements.validate(doc) == []
    stages[2]["clock_start"] = "previous_stage_start"
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/2/time_limit_working_days")
    assert issue.value == 2
    assert issue.message.startswith("stage 3 counts its 2 working days from the start of stage 2, which itself "
                                    "has 5: stage 3 would be due on or before the day it opens")
    stages[2]["time_limit_working_days"] = 5  # as long as stage 2: due the day it opens, refused too
    assert "stage 3 counts its 5 working days" in only_issue_at(
        doc, "/escalation/ladders/0/stages/2/time_limit_working_days").message
    stages[2]["time_limit_working_days"] = 6  # one more: always due after it opens
    assert arrangements.validate(doc) == []


def test_notify_role_is_required_for_notify_action(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][3]["on_timeout"] = {"action": "notify_role"}
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/3/on_timeout/notify_role")
    assert "missing" in issue.message


def test_notify_role_with_another_action_is_flagged(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][0]["stages"][0]["on_timeout"]["notify_role"] = "business_manager"
    issue = only_issue_at(doc, "/escalation/ladders/0/stages/0/on_timeout/notify_role")
    assert "only used when the action is ‘notify_role’" in issue.message


def test_ladder_purposes_must_match(doc: dict[str, Any]) -> None:
    doc["escalation"]["overdue_ladder"] = "professional-disagreement"
    issue = only_issue_at(doc, "/escalation/overdue_ladder")
    assert "is for professional disagreements" in issue.message


def test_a_ladder_for_each_purpose(doc: dict[str, Any]) -> None:
    doc["escalation"]["ladders"][1]["purpose"] = "professional_disagreement"
    issues = validate(doc)
    assert "no ladder for overdue work" in issues_at(issues, "/escalation/ladders")[0].message
    assert issues_at(issues, "/escalation/overdue_ladder")


def test_missing_ladder_reference(doc: dict[str, Any]) -> None:
    doc["escalation"]["disagreement_ladder"] = "disagreements"
    assert "no ladder with the id" in only_issue_at(doc, "/escalation/disagreement_ladder").message


def test_milestones_in_order_and_within_the_deadline(doc: dict[str, Any]) -> None:
    milestones = doc["rapid_review"]["milestones"]
    milestones["meeting"]["offset_working_days"] = 9
    milestones["signoff"]["offset_working_days"] = 16
    issues = validate(doc)
    meeting = issues_at(issues, "/rapid_review/milestones/meeting/offset_working_days")
    signoff = issues_at(issues, "/rapid_review/milestones/signoff/offset_working_days")
    assert "can't come before the agency summaries (day 10)" in meeting[0].message
    assert "after the rapid review deadline (15 working days)" in signoff[0].message


def test_some_category_must_start_a_rapid_review(doc: dict[str, Any]) -> None:
    for category in doc["serious_incident_notification"]["categories"]:
        category["requires_rapid_review"] = False
    assert "no category starts a rapid review" in only_issue_at(
        doc, "/serious_incident_notification/categories").message


def test_rapid_review_must_send_the_decision(doc: dict[str, Any]) -> None:
    doc["rapid_review"]["outputs_to_panel"] = ["rapid_review_report"]
    assert "‘lcspr_decision’ must be included" in only_issue_at(doc, "/rapid_review/outputs_to_panel").message


def test_weekend_closure_day_is_refused(doc: dict[str, Any]) -> None:
    doc["calendar"]["extra_closure_days"] = [{"date": "2026-12-26", "reason": "Boxing Day"}]
    issue = only_issue_at(doc, "/calendar/extra_closure_days/0/date")
    assert "Saturday" in issue.message


def test_repeated_closure_day_is_refused(doc: dict[str, Any]) -> None:
    day = {"date": "2026-12-24", "reason": "Christmas Eve"}
    doc["calendar"]["extra_closure_days"] = [day, dict(day)]
    assert "already listed" in only_issue_at(doc, "/calendar/extra_closure_days/1/date").message


def test_reporting_year_covers_twelve_months(doc: dict[str, Any]) -> None:
    doc["yearly_report"]["period"]["end"] = "03-30"
    issue = only_issue_at(doc, "/yearly_report/period/end")
    assert "should end 03-31" in issue.message


@pytest.mark.parametrize(("bad", "expected"), [("02-30", "not a real date"), ("02-29", "leap years")])
def test_month_day_must_exist_every_year(doc: dict[str, Any], bad: str, expected: str) -> None:
    doc["yearly_report"]["publish_by"]["month_day"] = bad
    assert expected in only_issue_at(doc, "/yearly_report/publish_by/month_day").message


def test_publish_by_may_be_left_unset(doc: dict[str, Any]) -> None:
    assert doc["yearly_report"]["publish_by"]["month_day"] is None
    doc["yearly_report"]["publish_by"]["month_day"] = "09-30"
    assert validate(doc) == []


def test_learning_section_is_optional(doc: dict[str, Any]) -> None:
    del doc["learning"]
    del doc["education_representation"]
    del doc["chair"]["rotation"]
    assert validate(doc) == []


# --------------------------------------------------------------------------------------------------
# Reporting


def test_all_errors_are_reported_together(doc: dict[str, Any]) -> None:
    doc["serious_incident_notification"]["dedline"] = doc["serious_incident_notification"].pop("deadline")
    doc["calendar"]["extra_closure_days"] = [{"date": "2026-02-30", "reason": "Typo"}]
    doc["escalation"]["ladders"][0]["stages"][1]["handler_role"] = "line_manager"
    text = json.dumps(doc)
    with pytest.raises(ArrangementsError) as caught:
        load(text)
    paths = [i.path for i in caught.value.issues]
    assert len(paths) >= 3
    assert {"/serious_incident_notification/dedline", "/calendar/extra_closure_days/0/date",
            "/escalation/ladders/0/stages/1/handler_role"} <= set(paths)
    assert paths == sorted(paths, key=arrangements._path_sort_key)
    assert str(caught.value).startswith(f"{len(paths)} problems in the arrangements")


def test_issues_sort_list_indexes_as_numbers(doc: dict[str, Any]) -> None:
    for i in (2, 10):
        doc["roles"][i]["members"] = ["Bad"]
    paths = [i.path for i in validate(doc)]
    assert paths == ["/roles/2/members/0", "/roles/10/members/0"]


def test_issue_text_is_path_then_message() -> None:
    issue = ValidationIssue("/calendar/timezone", "UTC", "must be ‘Europe/London’, not ‘UTC’")
    assert str(issue) == "/calendar/timezone: must be ‘Europe/London’, not ‘UTC’"
    assert str(ValidationIssue("", None, "The file is empty.")) == "/: The file is empty."


def test_big_values_are_shortened_in_issues(doc: dict[str, Any]) -> None:
    doc["partnership"]["notes"] = "x" * 10_000
    issue = only_issue_at(doc, "/partnership/notes")
    assert isinstance(issue.value, str)
    assert len(issue.value) < 400


def test_validate_accepts_anything_without_raising() -> None:
    for value in (None, [], "text", 3, {"schema_version": "1.0"}):
        issues = validate(value)  # type: ignore[arg-type]
        assert issues
        assert all(isinstance(i, ValidationIssue) for i in issues)


def test_keys_with_slashes_are_escaped_in_pointers(doc: dict[str, Any]) -> None:
    doc["partnership"]["a/b~c"] = 1
    assert only_issue_at(doc, "/partnership/a~1b~0c")


def test_canonical_json_and_hash() -> None:
    a = {"b": 1, "a": {"d": "é", "c": [1, 2]}}
    b = {"a": {"c": [1, 2], "d": "é"}, "b": 1}
    assert canonical_json(a) == '{"a":{"c":[1,2],"d":"é"},"b":1}'
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    assert content_hash(a) != content_hash({**a, "b": 2})


# --------------------------------------------------------------------------------------------------
# Nothing crashes


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "2026-02-30", "u-x", "vale-icb", "escalate", "notify_role"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _resolve(doc: Any, pointer: str) -> Any:
    node = doc
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _mutate(doc: Any, data: st.DataObject) -> None:
    node = doc
    for _ in range(data.draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            child = node[data.draw(st.sampled_from(sorted(node)))]
        elif isinstance(node, list) and node:
            child = node[data.draw(st.integers(0, len(node) - 1))]
        else:
            break
        if not isinstance(child, dict | list):
            break
        node = child
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if isinstance(node, dict):
        if action == "add" or not node:
            node[data.draw(st.text(max_size=10))] = data.draw(JSON_VALUES)
        else:
            key = data.draw(st.sampled_from(sorted(node)))
            if action == "delete":
                del node[key]
            else:
                node[key] = data.draw(JSON_VALUES)
    elif isinstance(node, list):
        if action == "add" or not node:
            node.append(data.draw(JSON_VALUES))
        else:
            index = data.draw(st.integers(0, len(node) - 1))
            if action == "delete":
                del node[index]
            else:
                node[index] = data.draw(JSON_VALUES)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edits_never_crash_and_point_at_real_places(riverford_doc: dict[str, Any],
                                                           data: st.DataObject) -> None:
    doc = copy.deepcopy(riverford_doc)
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(doc, data)
    issues = validate(doc)
    for issue in issues:
        assert isinstance(issue, ValidationIssue)
        assert issue.message and ": " in str(issue)
        if issue.path:
            parent = issue.path.rsplit("/", 1)[0]
            assert isinstance(_resolve(doc, parent), dict | list), issue
    try:
        load(json.dumps(doc))
    except ArrangementsError as exc:
        assert exc.issues


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(bytes))
def test_random_input_only_ever_raises_arrangements_error(text: str | bytes) -> None:
    for filename in (None, "a.json", "a.yaml"):
        try:
            doc = load(text, filename=filename)
        except ArrangementsError as exc:
            assert exc.issues
            assert all(isinstance(i, ValidationIssue) for i in exc.issues)
        else:  # pragma: no cover - random text is never valid arrangements
            pytest.fail(f"accepted {doc!r}")


@settings(max_examples=100, deadline=None)
@given(value=JSON_VALUES)
def test_random_yaml_round_trips_or_is_refused_cleanly(value: Any) -> None:
    text = yaml.safe_dump({"value": value})
    try:
        assert parse_document(text, filename="x.yaml")["value"] == value
    except ArrangementsError as exc:
        assert exc.issues


def test_schema_address_key_is_allowed_for_editors(doc: dict[str, Any]) -> None:
    doc["$schema"] = "../arrangements.schema.json"
    assert validate(doc) == []


def test_any_of_errors_give_the_most_useful_message_not_the_nested_noise() -> None:
    checker = Draft202012Validator({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]})
    (error,) = checker.iter_errors(-5)
    ranked = arrangements._translate(error)
    assert [issue.message for issue, _ in ranked] == ["must be at least 1, not -5"]


def test_schema_issues_speaks_plain_english_for_other_schemas() -> None:
    checker = Draft202012Validator(
        {"type": "object", "additionalProperties": False, "required": ["due"],
         "properties": {"due": {"title": "Due date", "type": "string", "format": "date"}}},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    assert arrangements.schema_issues(checker, {"due": "2026-02-30"}) == [
        ValidationIssue("/due", "2026-02-30", "‘2026-02-30’ is not a real date")]
    assert [str(i) for i in arrangements.schema_issues(checker, {"deu": "x"})] == [
        "/deu: unknown key ‘deu’ — did you mean ‘due’? Allowed here: due",
        "/due: ‘due’ (Due date) is missing",
    ]


# --- issue 16: who each incident category notifies, whether the Panel sees it, the ages it covers ---------------

def _category(doc: dict[str, Any], category_id: str) -> tuple[int, dict[str, Any]]:
    categories = doc["serious_incident_notification"]["categories"]
    index = next(i for i, c in enumerate(categories) if c["id"] == category_id)
    return index, categories[index]


def test_the_examples_notify_a_care_leavers_death_to_the_secretary_of_state_and_ofsted(doc) -> None:
    _, care_leaver = _category(doc, "care_leaver_death_to_24")
    assert care_leaver["notify"] == ["secretary_of_state", "ofsted"]
    assert care_leaver["panel_sees"] is False and care_leaver["age_at_incident"] == {"min": 16, "max": 24}


def test_a_category_that_starts_a_rapid_review_must_be_seen_by_the_panel(doc) -> None:
    i, category = _category(doc, "death_abuse_neglect")
    category["panel_sees"] = False
    issue = only_issue_at(doc, f"/serious_incident_notification/categories/{i}/panel_sees")
    assert "starts a rapid review" in issue.message


def test_a_category_the_panel_sees_must_notify_the_panel(doc) -> None:
    i, category = _category(doc, "lac_death_any_cause")
    category["notify"] = ["dfe", "ofsted"]
    issue = only_issue_at(doc, f"/serious_incident_notification/categories/{i}/notify")
    assert "national_panel" in issue.message
    category["panel_sees"] = False
    assert validate(doc) == []


def test_the_youngest_age_cannot_be_above_the_oldest(doc) -> None:
    i, category = _category(doc, "care_leaver_death_to_24")
    category["age_at_incident"] = {"min": 25, "max": 24}
    issue = only_issue_at(doc, f"/serious_incident_notification/categories/{i}/age_at_incident/min")
    assert "above the oldest" in issue.message


def test_an_unknown_recipient_is_refused_by_the_schema(doc) -> None:
    i, category = _category(doc, "care_leaver_death_to_24")
    category["notify"] = ["the_press"]
    assert issues_at(validate(doc), f"/serious_incident_notification/categories/{i}/notify/0")


def test_line_of_leads_to_the_value_a_problem_is_about() -> None:
    """Issue 17.7: the editor's line for an issue: the value at its path (JSON or YAML), a syntax error's own line,
    the parent's line for a missing field, None for text that cannot be read."""
    from safeguarding.arrangements import ValidationIssue, line_of

    text = '{\n  "rapid_review": {\n    "deadline": {\n      "value": "fifteen"\n    }\n  },\n  "roles": [1, 2]\n}'
    assert line_of(text, ValidationIssue("/rapid_review/deadline/value", "fifteen", "not a number")) == 4
    assert line_of(text, ValidationIssue("/rapid_review/missing", None, "required")) == 2
    assert line_of("a: 1\nb:\n  - x\n  - y\n", ValidationIssue("/b/1", "y", "bad")) == 4
    assert line_of("{", ValidationIssue("", None, "This isn't valid JSON (line 7, column 2): oops.")) == 7
    assert line_of("{ [", ValidationIssue("/a", None, "bad")) is None
