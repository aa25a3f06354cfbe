"""schemathesis hooks for scripts/schemathesis.sh: what a client of ringcast does that a JSON
Schema cannot say.

1. An APNs registration's regular (alert) token must differ from its PushKit (VoIP) token
   (the description says so in words; JSON Schema cannot compare two values). Generated
   bodies that give the same token twice get a different regular token, as a real app has.
2. After `101 Switching Protocols` (the channel's WebSocket upgrade) the connection speaks
   WebSocket, not HTTP (RFC 9110 §15.2.2): it must not go back to the client's pool, or the
   next request would be written into the WebSocket.
"""

import http.client

import schemathesis


def _distinct(token: str) -> str:
    """The same length of hex, never equal to `token` (compared as bytes: case-insensitive)."""
    first = "1" if token[:1].lower() == "0" else "0"
    return first + token[1:]


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if not isinstance(body, dict):
        return
    token, alert = body.get("token"), body.get("alert_token")
    if isinstance(token, str) and isinstance(alert, str) and token.lower() == alert.lower():
        body["alert_token"] = _distinct(alert)
    prid = body.get("pn_prid")
    if isinstance(prid, str) and "&" in prid:
        parts = [part.split(":", 1) for part in prid.split("&")]
        if len(parts) == 2 and all(len(part) == 2 for part in parts):
            (first, kind_a), (second, kind_b) = parts
            if first.lower() == second.lower():
                body["pn_prid"] = f"{first}:{kind_a}&{_distinct(second)}:{kind_b}"


_check_close = http.client.HTTPResponse._check_close


def _switched_protocols_close(self):
    return self.status == 101 or _check_close(self)


http.client.HTTPResponse._check_close = _switched_protocols_close
