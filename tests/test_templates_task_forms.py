"""Task forms ask a conditional question under the answer that needs it (issue 17, point 9): reviewer/task.html
rendered with the widgets web/pages/schema_forms.py builds from the task's JSON Schema."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from web.schema_forms import widgets
from web.templating import env

TASKS = Path(__file__).resolve().parents[1] / "schemas" / "tasks"


def render_task(schema_name: str, values: dict | None = None, errors: dict | None = None) -> str:
    schema = json.loads((TASKS / f"{schema_name}.json").read_text())
    options = {prop["x-options"]: {"information-sharing": "Information sharing"}
               for prop in schema.get("properties", {}).values() if prop.get("x-options")}
    task = SimpleNamespace(status="open", title=schema.get("title", "A task"), candidate_label="Leads", due_date=None,
                           follow_up_date=None, claimed_by=None, days_late=0)
    case = SimpleNamespace(case_ref="T-1", national_ref="N-1", summary="Facts.")
    return env.get_template("reviewer/task.html").render(
        case=case, task=task, national=False, may_act=True, claimed_by_other=False, category="Serious harm",
        children=[], days_left_text="", overdue=False, schema=schema, error_summary=[], answers=[], confirmed=False,
        flash=None, back="/cases/c/tasks/t", case_href="/cases/c", form_key="k", csrf_token="t",
        widgets=widgets(schema, values or {}, errors or {}, options))


class Fields(HTMLParser):
    """For each form field (by name): the id of the conditional block it is in (or None) and its label text."""

    def __init__(self):
        super().__init__()
        self.stack: list[str | None] = []  # the conditional id each open <div> is in
        self.fields: dict[str, str | None] = {}
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div":
            inside = a.get("id") if "govuk-radios__conditional" in (a.get("class") or "") else None
            self.stack.append(inside or (self.stack[-1] if self.stack else None))
        elif tag in ("input", "textarea", "select") and a.get("type") not in ("hidden", "radio"):
            self.fields.setdefault(a["name"].split("-")[0], self.stack[-1] if self.stack else None)
        elif tag == "label":
            self._label_for, self._text = a.get("for"), ""

    def handle_endtag(self, tag):
        if tag == "div" and self.stack:
            self.stack.pop()
        elif tag == "label" and self._label_for:
            self.labels[self._label_for] = " ".join(self._text.split())
            self._label_for = None

    def handle_data(self, data):
        if self._label_for:
            self._text += data


def fields_of(html: str) -> Fields:
    form = html[html.index('id="task-form"'):]
    parser = Fields()
    parser.feed(form[:form.index("</form>")])
    return parser


def controls(html: str, name: str, value: str) -> str | None:
    """The conditional block's id that the radio ``name=value`` reveals."""
    for tag in re.findall(r"<input [^>]*>", html):
        if f'name="{name}"' in tag and f'value="{value}"' in tag:
            found = re.search(r'data-aria-controls="([^"]+)"', tag)
            return found.group(1) if found else None
    raise AssertionError(f"no radio {name}={value}")


@pytest.mark.parametrize("schema, question, answer, revealed", [
    ("partner_signoff.v1", "agree", "false", ["comments"]),
    ("panel_response.v1", "response", "disagrees", ["reasons"]),
    ("ladder_stage.v1", "outcome", "resolved", ["agreed_actions", "learning_theme"]),
    ("ladder_stage.v1", "outcome", "escalated", ["reason"]),
    ("lcspr_publication_plan.v1", "publish", "yes", ["planned_publication_date"]),
    ("lcspr_publication_plan.v1", "publish", "no", ["reasons", "improvements_summary"]),
])
def test_a_field_needed_after_one_answer_is_revealed_under_it_and_not_called_optional(schema, question, answer,
                                                                                       revealed):
    html = render_task(schema)
    block = controls(html, question, answer)
    assert block, f"{question}={answer} reveals nothing"
    fields = fields_of(html)
    for name in revealed:
        assert fields.fields.get(name) == block, f"{name} is not under {question}={answer}"
        assert html.count(f'name="{name}"') + html.count(f'name="{name}-day"') == 1  # asked once
    labels = {k: v for k, v in fields.labels.items() if k.split("-")[0] in revealed}
    assert labels and not [v for v in labels.values() if "(optional)" in v], labels
    assert "govuk-radios--inline" not in html  # GOV.UK: no conditional reveals on inline radios


def test_the_revealed_field_is_open_when_its_answer_is_chosen_and_shows_its_error():
    html = render_task("ladder_stage.v1", {"outcome": "escalated"}, {"reason": "Enter ‘Why’"})
    block = controls(html, "outcome", "escalated")
    assert f'class="govuk-radios__conditional" id="{block}"' in html  # not hidden
    assert 'id="reason-error"' in html and 'id="reason"' in html  # the summary's link target is there
    closed = controls(html, "outcome", "resolved")
    assert f'class="govuk-radios__conditional govuk-radios__conditional--hidden" id="{closed}"' in html


def test_other_fields_are_unchanged():
    html = render_task("notification_sent.v1")
    assert "govuk-radios__conditional" not in html
    assert "Notes (optional)" in html
