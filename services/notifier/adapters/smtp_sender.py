"""Email over SMTP (aiosmtplib). One connection is kept open and reused; STARTTLS, implicit
TLS and AUTH are configurable. Reply codes are classified: 4xx transient, 5xx permanent."""

from __future__ import annotations

import asyncio
from email.utils import parseaddr

import aiosmtplib

from services.notifier.adapters.email_mime import email_bytes
from services.notifier.domain.message import OutboundMessage, SendResult
from services.notifier.domain.policy import classify_smtp


class SmtpSender:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool = False,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        validate_certs: bool = True,
    ):
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.use_tls = starttls, use_tls
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self.validate_certs = validate_certs
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=self.starttls,
            timeout=self.timeout_s,
            validate_certs=self.validate_certs,
        )
        await client.connect()
        if self.username:
            await client.login(self.username, self.password or "")
        return client

    async def send(self, message: OutboundMessage) -> SendResult:
        # Bytes, not a Message: aiosmtplib would flatten a Message again (78-column folding).
        try:
            mail = email_bytes(message, sender=self.sender)
        except ValueError as exc:
            return SendResult("permanent", str(exc), "client_error")
        envelope_from = parseaddr(self.sender)[1]
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None or not self._client.is_connected:
                        self._client = await self._connect()
                    errors, response = await self._client.sendmail(envelope_from, [message.to], mail)
                    if errors:
                        code, text = next(iter(errors.values()))
                        status, kind = classify_smtp(code)
                        return SendResult(status, f"{code} {text}", kind)
                    return SendResult("ok", f"250 {response}")
                except aiosmtplib.SMTPServerDisconnected as exc:
                    # A kept-alive connection the server closed: reconnect once, then give up.
                    self._client = None
                    if attempt == 2:
                        return SendResult("transient", f"disconnected: {exc}", "connection")
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    first = exc.recipients[0]
                    status, kind = classify_smtp(first.code)
                    return SendResult(status, f"{first.code} {first.message}", kind)
                except aiosmtplib.SMTPResponseException as exc:
                    await self._drop()
                    status, kind = classify_smtp(exc.code)
                    return SendResult(status, f"{exc.code} {exc.message}", kind)
                except aiosmtplib.SMTPTimeoutError as exc:
                    await self._drop()
                    return SendResult("transient", f"timeout: {exc}", "timeout")
                except (aiosmtplib.SMTPException, OSError) as exc:
                    await self._drop()
                    return SendResult("transient", f"connection failed: {exc}", "connection")
        return SendResult("transient", "unreachable", "connection")

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None and self._client.is_connected:
                try:
                    await self._client.quit()
                except aiosmtplib.SMTPException:
                    self._client.close()
            self._client = None
