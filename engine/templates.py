"""Message templates: `{first_name}`, `{field|default text}`, with `{{` and `}}` for literal braces."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from string import Formatter
from typing import Any

_formatter = Formatter()

# Contact columns a template can name, plus the keyword that enrolled the contact; any other name is a
# custom field from the contact's `fields`.
STANDARD_FIELDS = ("first_name", "last_name", "email", "company", "phone", "keyword", "owner_name")
# Fields every enrollment has: the number texted to, and the keyword for keyword enrollments. A
# placeholder for any other field needs a default, because a contact may lack it.
ALWAYS_KNOWN_FIELDS = frozenset({"phone", "keyword"})
SAMPLE_PHONE = "+12125550123"


class TemplateError(ValueError):
    """A template that cannot be parsed or names a field without a value or default."""


@dataclass(frozen=True)
class Placeholder:
    field: str
    default: str | None  # None: no default given


def _tokens(template: str) -> list[tuple[str, Placeholder | None]]:
    """Split a template into (literal text, following placeholder) pairs, raising TemplateError on bad braces."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as error:
        raise TemplateError(f"{error}: write literal braces as {{{{ and }}}}") from None
    tokens: list[tuple[str, Placeholder | None]] = []
    for literal, field_name, format_spec, conversion in parsed:
        if field_name is None:
            tokens.append((literal, None))
            continue
        # Formatter splits "{field|default: text}" at the colon and "!"; put the pieces back together.
        spec = f":{format_spec}" if format_spec else ""
        conv = f"!{conversion}" if conversion else ""
        name, bar, default = f"{field_name}{conv}{spec}".partition("|")
        name = name.strip()
        if not name:
            raise TemplateError("empty placeholder {}: name a field such as {first_name}")
        tokens.append((literal, Placeholder(field=name, default=default if bar else None)))
    return tokens


def placeholders(template: str) -> list[Placeholder]:
    """List the fields a template uses."""
    return [placeholder for _literal, placeholder in _tokens(template) if placeholder is not None]


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill a template from `fields`; an empty or missing value uses the default, else raises TemplateError."""
    parts: list[str] = []
    for literal, placeholder in _tokens(template):
        parts.append(literal)
        if placeholder is None:
            continue
        value = fields.get(placeholder.field)
        if value is None or value == "":
            if placeholder.default is None:
                raise TemplateError(
                    f"field {placeholder.field!r} has no value: give it a default such as {{{placeholder.field}|there}}"
                )
            value = placeholder.default
        parts.append(str(value))
    return "".join(parts)


def template_problems(template: str) -> list[str]:
    """Return what makes a template unsafe to send: bad braces, or a field that may be unknown and has no default."""
    try:
        found = placeholders(template)
    except TemplateError as error:
        return [str(error)]
    problems: list[str] = []
    for placeholder in found:
        if placeholder.default is None and placeholder.field not in ALWAYS_KNOWN_FIELDS:
            problems.append(
                f"{{{placeholder.field}}} has no default and not every contact has {placeholder.field}:"
                f" give it one, such as {{{placeholder.field}|there}}"
            )
    return problems


def field_name_hints(template: str) -> list[str]:
    """Return hints for field names that look like a misspelt standard field, such as {frist_name}."""
    hints: list[str] = []
    for placeholder in placeholders(template):
        if placeholder.field in STANDARD_FIELDS:
            continue
        close = difflib.get_close_matches(placeholder.field, STANDARD_FIELDS, n=1, cutoff=0.75)
        if close:
            hints.append(f"{{{placeholder.field}}} is no standard field, so only a custom field of that name fills it: did you mean {{{close[0]}}}?")
    return hints


def render_sample(template: str, keyword: str) -> str:
    """Render a template the way a contact with no optional fields would see it, for length estimates."""
    return render(template, {"phone": SAMPLE_PHONE, "keyword": keyword})
