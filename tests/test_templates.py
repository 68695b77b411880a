"""Templates: `{field}`, `{field|default}`, escaped braces, and the checks `smsdrip check` runs on them."""

from __future__ import annotations

import pytest

from engine.models import Contact, Enrollment
from engine.outbound import template_fields
from engine.templates import STANDARD_FIELDS, TemplateError, field_name_hints, render, template_problems


def test_render_fills_field():
    assert render("Hi {first_name}!", {"first_name": "Ana"}) == "Hi Ana!"


def test_render_uses_default_when_missing():
    assert render("Hi {first_name|there}!", {}) == "Hi there!"


def test_render_uses_default_when_empty():
    assert render("Hi {first_name|there}!", {"first_name": ""}) == "Hi there!"


def test_render_default_with_colon():
    assert render("{plan|Plan: basic}", {}) == "Plan: basic"


def test_render_escaped_braces():
    assert render("Use {{code}} {first_name|x}", {"first_name": "Ana"}) == "Use {code} Ana"


def test_render_custom_field():
    assert render("Your {plan|} plan", {"plan": "pro"}) == "Your pro plan"


def test_render_missing_without_default_raises():
    with pytest.raises(TemplateError, match="first_name"):
        render("Hi {first_name}", {})


def test_problems_field_without_default():
    assert template_problems("Hi {first_name}") == [
        "{first_name} has no default and not every contact has first_name: give it one, such as {first_name|there}"
    ]


def test_problems_always_known_fields():
    assert template_problems("You texted {keyword} from {phone}") == []


def test_problems_unbalanced_brace():
    assert template_problems("Hi {first_name") == ["expected '}' before end of string: write literal braces as {{ and }}"]


def test_problems_single_closing_brace():
    assert template_problems("Smile }") == ["Single '}' encountered in format string: write literal braces as {{ and }}"]


def test_problems_empty_placeholder():
    assert template_problems("Hi {}") == ["empty placeholder {}: name a field such as {first_name}"]


def test_hint_for_misspelt_field():
    assert field_name_hints("Hi {frist_name|there}") == [
        "{frist_name} is no standard field, so only a custom field of that name fills it: did you mean {first_name}?"
    ]


def test_no_hint_for_custom_field():
    assert field_name_hints("Your {plan|basic} plan") == []


def test_standard_fields_match_send_fields():
    contact = Contact(phone="+12125550123", fields={})
    fields = template_fields(contact, Enrollment(keyword="DEMO"))
    assert set(fields) == set(STANDARD_FIELDS)
