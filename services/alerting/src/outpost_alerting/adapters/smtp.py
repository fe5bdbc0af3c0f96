"""E-mail deliveries over SMTP (``aiosmtplib``), with the deployment's SMTP settings."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from outpost_alerting.domain import deliveries


@dataclass(frozen=True)
class SmtpConfig:
    host: str = ""
    port: int = 587
    tls: str = "starttls"  # "starttls" | "tls" | "none"
    username: str = ""
    password: str = ""
    sender: str = "outpost@localhost"
    timeout: float = 10.0
    # How the server's certificate is verified (STARTTLS or TLS): None for the system's CAs.
    tls_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.tls not in ("starttls", "tls", "none"):
            raise ValueError(f"smtp_tls must be starttls, tls or none, not {self.tls!r}")


class EmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def message(self, to: list[str], subject: str, text: str, event_id: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain="outpost")
        msg["X-Outpost-Event-Id"] = event_id
        msg.set_content(text)
        return msg

    async def send(
        self, to: list[str], subject: str, text: str, event_id: str
    ) -> deliveries.Result:
        started = time.perf_counter()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        c = self.config
        if not c.host:
            return deliveries.failed("SMTP is not configured", ms(), permanent=True)
        try:
            await aiosmtplib.send(
                self.message(to, subject, text, event_id),
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                use_tls=c.tls == "tls",
                start_tls=c.tls == "starttls",
                tls_context=c.tls_context,
                timeout=c.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return deliveries.failed(f"recipients refused: {exc}", ms(), permanent=True)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return deliveries.failed(f"{type(exc).__name__}: {exc}", ms())
        return deliveries.Result(ok=True, latency_ms=ms(), status_code=250)
