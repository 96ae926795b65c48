"""A real SMTP server for tests (Debian's python3-aiosmtpd, run with
/usr/bin/python3): STARTTLS required, AUTH required after it (one user),
every message appended to OUT as a JSON line with its envelope, whether
TLS was on and who authenticated.

    smtpd.py PORT OUT CERT KEY USER PASSWORD"""

import json
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, cert, key, user, password = sys.argv[1:7]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(json.dumps({
                "from": envelope.mail_from, "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "user": (session.auth_data.decode() if isinstance(session.auth_data, bytes)
                         else session.auth_data),
            }) + "\n")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
            and auth_data.password.decode() == password:
        return AuthResult(success=True, auth_data=auth_data.login)
    return AuthResult(success=False, handled=False)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx,
                        require_starttls=True, authenticator=authenticator,
                        auth_required=True, auth_require_tls=True)
controller.start()
print("listening", flush=True)
threading.Event().wait()
