"""Phone numbers: parsing to E.164 and masking for logs."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "US"


class InvalidPhoneNumber(ValueError):
    """A value that is not a valid, dialable phone number."""


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """Parse a number in any common format and return it as E.164 (+15550100001)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"{_shown(raw)} is not a phone number: use E.164 such as +12125550123") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber(f"{_shown(raw)} is not a possible phone number: check the digits and the country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _shown(raw: str) -> str:
    """Quote a rejected value for an error message: masked when it has enough digits to be someone's number."""
    digits = sum(character.isdigit() for character in raw)
    return repr(mask(raw)) if digits > 4 else repr(raw[:40])


def mask(phone: str | None) -> str:
    """Hide all but the last 4 digits, so logs can tell numbers apart without holding them."""
    if not phone:
        return "<none>"
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + "".join(digits[-4:])
