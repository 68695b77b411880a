"""POST /api/leads: API keys, validation, upsert by number, consent, enrollment and the first text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sqlalchemy import select

from engine.db import session_scope
from engine.models import CaptureConsent, ConsentRecord, Contact, Enrollment, Event, ScheduledSend
from tests.conftest import OUR_NUMBER, wait_until
from tests.lead_fixtures import ApiClient, consent, utcnow

LEAD = {
    "phone": "(555) 010-0001",
    "first_name": "Dana",
    "last_name": "Reyes",
    "email": "Dana@Example.com",
    "company": "Acme",
    "source": "web_form",
    "fields": {"company_size": 12, "industry": "retail"},
    "consent": consent(page="https://example.com/demo"),
}


def test_leads_missing_key_401(api: ApiClient):
    response = api.client.post("/api/leads", json=LEAD)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "smsdrip apikey create" in response.get_json()["error"]


def test_leads_wrong_key_401(api: ApiClient):
    response = api.client.post("/api/leads", json=LEAD, headers={"Authorization": "Bearer sdk_not-a-real-key"})
    assert response.status_code == 401


def test_leads_revoked_key_401(api: ApiClient):
    from engine.apikeys import revoke_api_key

    assert api.post("/api/leads", LEAD).status_code == 201
    with session_scope() as session:
        revoke_api_key(session, "website", utcnow())
    assert api.post("/api/leads", LEAD).status_code == 401


def test_api_key_stored_hashed(api: ApiClient):
    from engine.models import ApiKey

    with session_scope() as session:
        row = session.scalars(select(ApiKey)).one()
        assert api.key not in (row.key_hash, row.prefix)
        assert len(row.key_hash) == 64
        assert api.key.startswith(row.prefix)


def test_leads_missing_consent_422(api: ApiClient):
    response = api.post("/api/leads", {key: value for key, value in LEAD.items() if key != "consent"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "consent"
    with session_scope() as session:
        assert session.scalar(select(Contact)) is None


def test_leads_consent_without_time_zone_422(api: ApiClient):
    response = api.post("/api/leads", {**LEAD, "consent": {"method": "web_form", "at": "2025-01-31T14:05:00"}})
    assert response.status_code == 422
    assert response.get_json()["field"] == "consent.at"


def test_leads_consent_in_future_422(api: ApiClient):
    future = (utcnow() + timedelta(days=1)).isoformat()
    response = api.post("/api/leads", {**LEAD, "consent": consent(at=future)})
    assert response.status_code == 422
    assert response.get_json()["field"] == "consent.at"


def test_leads_invalid_phone_422(api: ApiClient):
    response = api.post("/api/leads", {**LEAD, "phone": "12"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "phone"


def test_leads_unknown_sequence_422(api: ApiClient):
    response = api.post("/api/leads", {**LEAD, "sequence": "nope"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "sequence"
    assert "demo" in response.get_json()["error"]


def test_leads_unknown_top_field_422(api: ApiClient):
    response = api.post("/api/leads", {**LEAD, "company_size": 40})
    assert response.status_code == 422
    assert response.get_json()["field"] == "company_size"


def test_leads_bad_custom_field_name_422(api: ApiClient):
    response = api.post("/api/leads", {**LEAD, "fields": {"Company Size": 40}})
    assert response.status_code == 422
    assert response.get_json()["field"] == "fields.Company Size"


def test_leads_not_json_422(api: ApiClient):
    response = api.client.post("/api/leads", data="phone=1", headers={"Authorization": f"Bearer {api.key}"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "body"


def test_leads_create_normalises_and_stores(api: ApiClient):
    response = api.post("/api/leads", LEAD)
    assert response.status_code == 201
    body = response.get_json()
    assert body["created"] is True
    assert body["contact"]["phone"] == "+15550100001"
    assert body["contact"]["source"] == "web_form"

    with session_scope() as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.first_name, contact.email, contact.company) == ("Dana", "dana@example.com", "Acme")
        assert contact.fields == {"company_size": 12, "industry": "retail"}
        stored = session.scalars(select(CaptureConsent)).one()
        assert stored.method == "web_form"
        assert stored.given_at.isoformat() == "2025-01-31T14:05:00+00:00"
        assert stored.proof == {"page": "https://example.com/demo"}
        assert stored.recorded_by == "api:website"


def test_leads_default_region_setting(api: ApiClient, monkeypatch):
    from engine.config import reset_settings
    from webhooks.app import create_app

    monkeypatch.setenv("SMSDRIP_DEFAULT_REGION", "GB")
    reset_settings()
    app = create_app()
    client = ApiClient(app.test_client(), api.key)
    response = client.post("/api/leads", {**LEAD, "phone": "07911 123456"})
    assert response.status_code == 201
    assert response.get_json()["contact"]["phone"] == "+447911123456"


def test_leads_second_post_updates(api: ApiClient):
    assert api.post("/api/leads", LEAD).status_code == 201
    response = api.post("/api/leads", {"phone": "+1 555 010 0001", "company": "Acme Corp", "fields": {"plan": "pro"},
                                       "tags": ["webinar"], "consent": consent(at="2025-02-01T09:00:00Z")})
    assert response.status_code == 200
    body = response.get_json()
    assert body["created"] is False
    assert sorted(body["changed"]) == ["company", "fields.plan", "tags"]
    with session_scope() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.first_name == "Dana"  # not given the second time, so kept
        assert contact.company == "Acme Corp"
        assert contact.fields == {"company_size": 12, "industry": "retail", "plan": "pro", "tags": ["webinar"]}
        assert len(session.scalars(select(CaptureConsent)).all()) == 2


def test_leads_routing_rule_enrolls(api: ApiClient):
    body = api.post("/api/leads", LEAD).get_json()
    assert body["sequence"] == "demo"
    assert body["enrollment_id"] is not None
    with session_scope() as session:
        send = session.scalars(select(ScheduledSend)).one()
        assert send.step_id == "welcome"


def test_leads_without_rule_not_enrolled(api: ApiClient):
    body = api.post("/api/leads", {**LEAD, "source": "crm"}).get_json()
    assert body["sequence"] is None
    with session_scope() as session:
        assert session.scalar(select(Enrollment)) is None


def test_leads_repost_keeps_one_enrollment(api: ApiClient):
    api.post("/api/leads", {**LEAD, "sequence": "demo"})
    body = api.post("/api/leads", {**LEAD, "sequence": "demo"}).get_json()
    assert body["enrollment_id"] is None
    assert body["not_enrolled"] == "already in this sequence"
    with session_scope() as session:
        assert len(session.scalars(select(Enrollment)).all()) == 1


def test_leads_opted_out_not_enrolled(api: ApiClient):
    api.post("/api/leads", {**LEAD, "source": "crm"})
    with session_scope() as session:
        session.scalars(select(Contact)).one().opted_out_at = utcnow()
    body = api.post("/api/leads", {**LEAD, "sequence": "demo"}).get_json()
    assert body["enrollment_id"] is None
    assert "START" in body["not_enrolled"]
    with session_scope() as session:
        assert session.scalar(select(ScheduledSend)) is None


def test_leads_initial_status_validated(api: ApiClient):
    api.post("/api/leads", {**LEAD, "source": "crm", "status": "converted"})
    response = api.post("/api/leads", {**LEAD, "source": "crm", "status": "new"})
    assert response.status_code == 409
    assert response.get_json()["allowed"] == []


def test_leads_timeline_records_capture(api: ApiClient):
    api.post("/api/leads", LEAD)
    with session_scope() as session:
        kinds = [(event.kind, event.actor) for event in session.scalars(select(Event).order_by(Event.id))]
    assert ("contact.created", "engine") in kinds
    assert ("consent.recorded", "api:website") in kinds
    assert ("lead.captured", "api:website") in kinds
    assert ("enrollment.started", "api:website") in kinds


def test_leads_first_step_within_seconds(api: ApiClient, start_worker, twilio_api):
    """From the form post to the first text: through Redis, a worker process and the twilio client."""
    worker = start_worker()
    posted = utcnow().timestamp()
    assert api.post("/api/leads", LEAD).status_code == 201

    messages = twilio_api.wait_for(1, timeout=30)
    assert len(messages) == 1, worker.log()
    assert (messages[0].to, messages[0].from_) == ("+15550100001", OUR_NUMBER)
    assert messages[0].body == "Hi Dana, thanks for your interest! Reply STOP to opt out."
    assert messages[0].received_at - posted < 10
    assert wait_until(lambda: _message_out_actor() == "engine")


def _message_out_actor() -> str | None:
    with session_scope() as session:
        return session.scalar(select(Event.actor).where(Event.kind == "message.out"))


def test_invalid_routing_stops_startup(routing):
    from engine.routing import RoutingFileError
    from webhooks.app import create_app

    routing.write("reps:\n  - {name: alice}\n")
    with pytest.raises(RoutingFileError, match=r"routing.yaml:2: reps\[0\]: rep 'alice' has neither phone nor email"):
        create_app()


def test_leads_consent_in_consent_history(api: ApiClient):
    api.post("/api/leads", LEAD)
    with session_scope() as session:
        record = session.scalars(select(ConsentRecord)).one()
        assert (record.action, record.method, record.source) == ("opt_in", "api", "api:website: web_form")
        assert record.created_at.isoformat() == "2025-01-31T14:05:00+00:00"


def test_leads_consent_keeps_opt_out(api: ApiClient):
    api.post("/api/leads", LEAD)
    with session_scope() as session:
        session.scalars(select(Contact)).one().opted_out_at = utcnow()
    api.post("/api/leads", {**LEAD, "consent": consent(at="2025-02-01T09:00:00Z")})
    with session_scope() as session:
        assert session.scalars(select(Contact)).one().opted_out
        assert len(session.scalars(select(ConsentRecord)).all()) == 2


def test_leads_response_has_last_activity(api: ApiClient):
    body = api.post("/api/leads", LEAD).get_json()
    with session_scope() as session:
        latest = session.scalars(select(Event.created_at).order_by(Event.id.desc())).first()
    assert latest is not None
    assert body["contact"]["last_activity_at"] == latest.isoformat()
