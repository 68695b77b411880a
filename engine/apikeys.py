"""API keys: created with 256 random bits, shown once, stored as a SHA-256 hash, revocable.

A plain SHA-256 is enough here because the keys are random, not chosen by people: there is no
dictionary to try, so a slow password hash would add cost and no protection.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.models import ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "sdk_"  # makes keys easy to spot in code and secret scanners
PREFIX_CHARS = 12  # characters of the key stored in clear, to tell keys apart in `apikey list`
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ApiKeyError(ValueError):
    """An API key name that is invalid, taken, or not found."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, now: datetime) -> tuple[ApiKey, str]:
    """Create a key named `name`; returns the row and the key, which is not stored and cannot be shown again."""
    if not NAME_PATTERN.match(name):
        raise ApiKeyError(f"{name!r} is not a valid key name: use letters, digits, '_', '.' or '-', such as website")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:PREFIX_CHARS], key_hash=hash_key(key), created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise ApiKeyError(f"an active key named {name!r} exists: revoke it first or pick another name") from None
    logger.info("API key %s (%s) created", row.id, name)
    return row, key


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)).all())


def revoke_api_key(session: Session, name_or_id: str, now: datetime) -> ApiKey:
    """Revoke the active key with this name or id; raises ApiKeyError when there is none."""
    condition = ApiKey.id == int(name_or_id) if name_or_id.isdigit() else ApiKey.name == name_or_id
    row = session.scalar(select(ApiKey).where(condition, ApiKey.revoked_at.is_(None)))
    if row is None:
        raise ApiKeyError(f"no active API key named or numbered {name_or_id!r}: see `smsdrip apikey list`")
    row.revoked_at = now
    logger.info("API key %s (%s) revoked", row.id, row.name)
    return row


def authenticate(session: Session, key: str, now: datetime) -> ApiKey | None:
    """Return the active key matching `key`, noting its use; None for an unknown or revoked key."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if row is not None:
        row.last_used_at = now
    return row
