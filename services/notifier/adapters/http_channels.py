"""HTTP providers: Slack incoming webhooks, a generic HMAC-signed webhook, and SMS through a
Twilio-style REST API. Timeouts, 408/425/429 and 5xx are transient; other 4xx permanent."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson

from services.notifier.domain.message import OutboundMessage, SendResult
from services.notifier.domain.policy import classify_http

SIGNATURE_HEADER = "X-Leadpipe-Signature"


def sign_body(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``: the receiver recomputes it and
    rejects stale timestamps, so a captured request cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _snippet(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:300]}".strip()


class _HttpChannel:
    name = "http"

    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def _post(self, url: str, **kwargs: Any) -> SendResult:
        try:
            response = await self.client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            return SendResult("transient", f"timeout: {type(exc).__name__}", "timeout")
        except httpx.HTTPError as exc:
            return SendResult("transient", f"connection failed: {type(exc).__name__}: {exc}", "connection")
        status, kind = classify_http(response.status_code)
        return SendResult(status, _snippet(response), kind, _retry_after(response))

    async def close(self) -> None:
        await self.client.aclose()


class SlackWebhook(_HttpChannel):
    """Posts ``short`` text. The recipient address is an incoming-webhook URL, or a channel
    name sent through the configured default webhook."""

    name = "slack"

    def __init__(self, client: httpx.AsyncClient, default_url: str | None):
        super().__init__(client)
        self.default_url = default_url

    async def send(self, message: OutboundMessage) -> SendResult:
        body: dict[str, Any] = {"text": message.short}
        if message.to.startswith(("http://", "https://")):
            url = message.to
        elif self.default_url:
            url = self.default_url
            body["channel"] = message.to
        else:
            return SendResult("permanent", "no Slack webhook URL configured", "client_error")
        return await self._post(url, content=orjson.dumps(body), headers={"Content-Type": "application/json"})


class SignedWebhook(_HttpChannel):
    """POSTs a JSON body to the recipient address, signed with HMAC-SHA256."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, secret: str):
        super().__init__(client)
        self.secret = secret

    async def send(self, message: OutboundMessage) -> SendResult:
        body = orjson.dumps(
            {
                "notification_id": message.notification_id,
                "subject": message.subject,
                "text": message.text,
                "short": message.short,
                **message.data,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.notification_id,
            SIGNATURE_HEADER: sign_body(self.secret, body, int(time.time())),
        }
        return await self._post(message.to, content=body, headers=headers)


class HttpSms(_HttpChannel):
    """SMS through a Twilio-style API: form POST to ``/2010-04-01/Accounts/{sid}/Messages.json``
    with basic auth; the provider answers 201 with a message ``sid``."""

    name = "sms"

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, account_sid: str, auth_token: str, sender: str):
        super().__init__(client)
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.sender = sender

    async def send(self, message: OutboundMessage) -> SendResult:
        result = await self._post(
            self.url,
            data={"To": message.to, "From": self.sender, "Body": message.short},
            auth=self.auth,
            headers={"Idempotency-Key": message.notification_id},
        )
        if result.ok:
            try:
                sid = orjson.loads(result.response.split(" ", 1)[1]).get("sid")
            except (IndexError, orjson.JSONDecodeError, AttributeError):
                sid = None
            return SendResult("ok", f"sid={sid}" if sid else result.response)
        return result
