"""Message templates: `{first_name}`, `{field|default text}`, with `{{` and `}}` for literal braces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Formatter
from typing import Any

_formatter = Formatter()


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
