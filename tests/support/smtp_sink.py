#!/usr/bin/python3
"""A real SMTP server on loopback for lookout's mail tests (Debian's python3-aiosmtpd).

    smtp_sink.py --port 0 --out DIR [--starttls CERT KEY | --implicit-tls CERT KEY]
                 [--auth USER:PASS] [--reject-rcpt ADDR]... [--tempfail]

Prints `READY <port>` on its first line once it accepts connections. Every message it accepts
is written to DIR as `NNNNNN.json` (written whole, then renamed): the envelope, whether the
session used TLS and AUTH, the raw message, its headers decoded, and its text and HTML parts.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out, reject, tempfail):
        self.out = out
        self.reject = {a.lower() for a in reject}
        self.tempfail = tempfail
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.tempfail:
            return "451 4.3.0 try again later"
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        headers = [[k, str(v)] for k, v in msg.items()]

        def part(kind):
            p = msg.get_body(preferencelist=(kind,))
            if p is None or p.get_content_type() != "text/" + kind:
                return None
            # Line ends as in a file: the wire's CRLF become LF.
            return p.get_content().replace("\r\n", "\n")

        parts = []
        for p in msg.walk():
            if not p.is_multipart():
                parts.append(p.get_content_type())
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": bool(tls),
            "authenticated": bool(session.authenticated),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "headers": headers,
            "text": part("plain"),
            "html": part("html"),
            "raw": raw.decode("utf-8", "replace"),
        }
        self.count += 1
        name = os.path.join(self.out, "%06d.json" % self.count)
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK queued as %d" % self.count


def server_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", metavar="USER:PASS")
    ap.add_argument("--reject-rcpt", action="append", default=[])
    ap.add_argument("--tempfail", action="store_true")
    a = ap.parse_args()

    sink = Sink(a.out, a.reject_rcpt, a.tempfail)
    kwargs = {"hostname": "sink.test", "auth_require_tls": False}
    if a.starttls:
        kwargs["tls_context"] = server_context(*a.starttls)
        kwargs["require_starttls"] = True
        kwargs["auth_require_tls"] = True
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, data):
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
    wrap = server_context(*a.implicit_tls) if a.implicit_tls else None

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, loop=loop, **kwargs), "127.0.0.1", a.port, ssl=wrap
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    # Stop when the test (our parent) goes away and closes our stdin.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    asyncio.run(main())
