"""The contact endpoints: detail with timeline, filtered pages, status moves, convert, assign, rep messages."""

from __future__ import annotations

from sqlalchemy import select

from engine.db import session_scope
from engine.models import Contact, Enrollment, Event, ScheduledSend
from tests.conftest import inbound_params, signed_post, wait_until
from tests.lead_fixtures import ApiClient, consent, utcnow


def _lead(phone: str, **extra) -> dict:
    return {"phone": phone, "first_name": "Lee", "source": "crm", "consent": consent(), **extra}


def test_contact_detail_has_timeline(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001", sequence="demo"))
    signed_post(api.client, "/twilio/sms", inbound_params("+15550100001", "Is there a free trial?"))

    response = api.get("/api/contacts/+15550100001")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "engaged"
    assert [e["sequence"] for e in body["enrollments"]] == ["demo"]
    assert body["enrollments"][0]["state"] == "replied"
    kinds = [entry["kind"] for entry in body["timeline"]]
    assert kinds.index("enrollment.started") < kinds.index("message.in") < kinds.index("status.changed")
    inbound = next(entry for entry in body["timeline"] if entry["kind"] == "message.in")
    assert inbound["text"] == "Is there a free trial?"
    assert inbound["actor"] == "contact"
    assert body["last_activity_at"] is not None


def test_contact_detail_any_format(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    assert api.get("/api/contacts/555-010-0001").get_json()["phone"] == "+15550100001"


def test_contact_detail_unknown_404(api: ApiClient):
    assert api.get("/api/contacts/+15550100009").status_code == 404


def test_contact_detail_invalid_number_422(api: ApiClient):
    response = api.get("/api/contacts/12")
    assert response.status_code == 422
    assert response.get_json()["field"] == "phone"


def test_contacts_list_filters_and_pages(api: ApiClient):
    for index in range(5):
        api.post("/api/leads", _lead(f"+1555010000{index}", sequence="demo" if index < 3 else None))
    api.post("/api/contacts/+15550100004/status", {"status": "nurturing"})

    first = api.get("/api/contacts", sequence="demo", per_page=2).get_json()
    assert [c["phone"] for c in first["contacts"]] == ["+15550100000", "+15550100001"]
    assert (first["total"], first["next_page"]) == (3, 2)
    second = api.get("/api/contacts", sequence="demo", per_page=2, page=2).get_json()
    assert [c["phone"] for c in second["contacts"]] == ["+15550100002"]
    assert second["next_page"] is None

    nurturing = api.get("/api/contacts", status="nurturing").get_json()
    assert [c["phone"] for c in nurturing["contacts"]] == ["+15550100004"]


def test_contacts_list_bad_params_422(api: ApiClient):
    assert api.get("/api/contacts", status="hot").get_json()["field"] == "status"
    assert api.get("/api/contacts", page="0").get_json()["field"] == "page"
    assert api.get("/api/contacts", per_page="1000").get_json()["field"] == "per_page"


def test_status_invalid_move_409(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    api.post("/api/contacts/+15550100001/status", {"status": "engaged"})

    response = api.post("/api/contacts/+15550100001/status", {"status": "contacted"})
    assert response.status_code == 409
    body = response.get_json()
    assert body["current"] == "engaged"
    assert body["requested"] == "contacted"
    assert body["allowed"] == ["qualified", "nurturing", "converted", "lost"]


def test_status_unknown_value_422(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    response = api.post("/api/contacts/+15550100001/status", {"status": "hot"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "status"


def test_status_change_on_timeline(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    body = api.post("/api/contacts/+15550100001/status", {"status": "nurturing"}).get_json()
    assert body["changed"] is True
    assert body["contact"]["status"] == "nurturing"
    with session_scope() as session:
        event = session.scalars(select(Event).where(Event.kind == "status.changed")).one()
    assert (event.actor, event.data) == ("api:website", {"previous": "new", "status": "nurturing"})


def test_status_qualified_assigns_round_robin(api: ApiClient):
    for index in range(3):
        api.post("/api/leads", _lead(f"+1555010000{index}"))
        api.post(f"/api/contacts/+1555010000{index}/status", {"status": "qualified"})
    owners = [api.get(f"/api/contacts/+1555010000{index}").get_json()["owner"] for index in range(3)]
    assert owners == ["alice", "bob", "alice"]


def test_convert_ends_enrollments(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001", sequence="demo"))
    response = api.post("/api/contacts/+15550100001/convert")
    assert response.status_code == 200
    assert response.get_json()["contact"]["status"] == "converted"
    with session_scope() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.state == "converted"
        assert enrollment.ended_at is not None
        assert session.scalars(select(ScheduledSend.status)).all() == ["cancelled"]
    assert api.post("/api/contacts/+15550100001/convert").get_json()["changed"] is False


def test_status_lost_ends_enrollments(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001", sequence="demo"))
    api.post("/api/contacts/+15550100001/status", {"status": "lost"})
    with session_scope() as session:
        assert session.scalars(select(Enrollment.state)).one() == "lost"


def test_assign_named_rep(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    body = api.post("/api/contacts/+15550100001/assign", {"rep": "bob"}).get_json()
    assert body["contact"]["owner"] == "bob"
    response = api.post("/api/contacts/+15550100001/assign", {"rep": "zed"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "rep"


def test_rep_message_pauses_sequences(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001", sequence="demo"))
    response = api.post("/api/contacts/+15550100001/messages", {"text": "Hi Lee, Alice here. Got 5 minutes?", "rep": "alice"})
    assert response.status_code == 202
    assert response.get_json()["contact"]["status"] == "contacted"
    with session_scope() as session:
        manual = session.scalars(select(ScheduledSend).where(ScheduledSend.kind == "manual")).one()
        assert (manual.actor, manual.body, manual.status) == ("rep:alice", "Hi Lee, Alice here. Got 5 minutes?", "pending")
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.state == "replied"
        ended = session.scalars(select(Event).where(Event.kind == "enrollment.ended")).one()
        assert ended.actor == "rep:alice"


def test_rep_message_sent_by_worker(api: ApiClient, start_worker, twilio_api):
    api.post("/api/leads", _lead("+15550100001"))
    worker = start_worker()
    api.post("/api/contacts/+15550100001/messages", {"text": "Alice here, how can I help?", "rep": "alice"})

    messages = twilio_api.wait_for(1, timeout=30)
    assert [m.body for m in messages] == ["Alice here, how can I help?"], worker.log()
    assert wait_until(lambda: _out_event_actor() == "rep:alice")


def _out_event_actor() -> str | None:
    with session_scope() as session:
        return session.scalar(select(Event.actor).where(Event.kind == "message.out"))


def test_rep_message_opted_out_409(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    with session_scope() as session:
        session.scalars(select(Contact)).one().opted_out_at = utcnow()
    response = api.post("/api/contacts/+15550100001/messages", {"text": "Hello?", "rep": "alice"})
    assert response.status_code == 409
    with session_scope() as session:
        assert session.scalar(select(ScheduledSend)) is None


def test_rep_message_unknown_rep_422(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    response = api.post("/api/contacts/+15550100001/messages", {"text": "Hello", "rep": "mallory"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "rep"


def test_rep_message_empty_text_422(api: ApiClient):
    api.post("/api/leads", _lead("+15550100001"))
    response = api.post("/api/contacts/+15550100001/messages", {"text": "  ", "rep": "alice"})
    assert response.status_code == 422
    assert response.get_json()["field"] == "text"
