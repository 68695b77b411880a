"""Scores and qualification from real inbound texts: replies, keywords, field values, the assign threshold."""

from __future__ import annotations

from sqlalchemy import select

from engine.db import session_scope
from engine.models import Contact, Event
from tests.conftest import inbound_params, signed_post
from tests.lead_fixtures import ApiClient, RoutingFile, consent


def _contact(phone: str = "+15550100001") -> Contact:
    with session_scope() as session:
        return session.scalars(select(Contact).where(Contact.phone == phone)).one()


def _text(api: ApiClient, body: str, phone: str = "+15550100001") -> None:
    assert signed_post(api.client, "/twilio/sms", inbound_params(phone, body)).status_code == 200


def test_keyword_scores_once(api: ApiClient):
    _text(api, "DEMO")
    _text(api, "demo")
    contact = _contact()
    assert contact.score == 5
    assert [(r["rule"], r["points"], r["reason"]) for r in contact.score_reasons] == [("texted-demo", 5, "texted keyword DEMO")]


def test_reply_engages_and_scores(api: ApiClient):
    _text(api, "DEMO")
    _text(api, "How much does it cost?")
    contact = _contact()
    assert contact.status == "engaged"
    assert contact.score == 15


def test_contacted_reply_becomes_engaged(api: ApiClient):
    api.post("/api/leads", {"phone": "+15550100001", "source": "crm", "status": "contacted", "consent": consent()})
    _text(api, "sounds good")
    assert _contact().status == "engaged"


def test_nurturing_reply_keeps_status(api: ApiClient):
    api.post("/api/leads", {"phone": "+15550100001", "source": "crm", "status": "nurturing", "consent": consent()})
    _text(api, "thanks")
    assert _contact().status == "nurturing"


def test_stop_is_no_reply(api: ApiClient):
    _text(api, "DEMO")
    _text(api, "STOP")
    contact = _contact()
    assert contact.status == "new"
    assert contact.score == 5


def test_field_rule_follows_fields(api: ApiClient):
    lead = {"phone": "+15550100001", "source": "crm", "consent": consent()}
    api.post("/api/leads", {**lead, "fields": {"company_size": "120"}})
    assert _contact().score == 20
    api.post("/api/leads", {**lead, "fields": {"company_size": "8"}})
    contact = _contact()
    assert contact.score == 0
    assert contact.score_reasons == []
    with session_scope() as session:
        changes = [event.data["change"] for event in session.scalars(select(Event).where(Event.kind == "score.changed").order_by(Event.id))]
    assert changes == [20, -20]


def test_score_threshold_qualifies_and_assigns(api: ApiClient):
    api.post("/api/leads", {"phone": "+15550100001", "source": "crm", "fields": {"company_size": 80}, "consent": consent()})
    assert (_contact().status, _contact().owner) == ("new", None)  # 20 points, below 30
    _text(api, "Can we talk tomorrow?")  # +10 reaches 30
    contact = _contact()
    assert (contact.status, contact.score, contact.owner) == ("qualified", 30, "alice")
    with session_scope() as session:
        assigned = session.scalars(select(Event).where(Event.kind == "contact.assigned")).one()
    assert (assigned.data["trigger"], assigned.data["rule"], assigned.data["pool"]) == ("qualified", "everyone", "sales")


def test_score_visible_in_api(api: ApiClient):
    api.post("/api/leads", {"phone": "+15550100001", "source": "crm", "fields": {"company_size": 80}, "consent": consent()})
    body = api.get("/api/contacts/+15550100001").get_json()
    assert body["score"] == 20
    assert [(r["rule"], r["points"], r["reason"]) for r in body["score_reasons"]] == [("mid-size", 20, "company_size >= 50")]


def test_captured_event_rule(api: ApiClient, routing: RoutingFile):
    routing.write("scoring:\n  rules:\n    - {name: form, on: captured, when: {source: web_form}, points: 7}\n")
    api.post("/api/leads", {"phone": "+15550100001", "source": "web_form", "consent": consent()})
    api.post("/api/leads", {"phone": "+15550100002", "source": "crm", "consent": consent()})
    assert _contact("+15550100001").score == 7
    assert _contact("+15550100002").score == 0
