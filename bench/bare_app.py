"""The webhook baseline: a bare Flask endpoint that parses the same form and returns empty TwiML."""

from flask import Flask, Response, request
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)


@app.post("/twilio/sms")
def inbound_sms() -> Response:
    form = request.form.to_dict()
    assert "MessageSid" in form
    return Response(str(MessagingResponse()), mimetype="application/xml")
