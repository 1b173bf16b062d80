#!/usr/bin/python3
"""Independent DKIM verifier for the tests: Debian's python3-dkim (dkimpy), run with /usr/bin/python3.

stdin:  JSON {"message": "<base64 of the raw message>", "records": {"s1._domainkey.example.org": "v=DKIM1; ..."}}
stdout: JSON {"signatures": [{"d", "s", "a", "h": [...], "ok": bool, "error"?: str}, ...]}
Public keys come only from "records" (through dkimpy's dnsfunc), never from real DNS.
Exit 0 with a verdict; exit 3 if dkimpy (or nacl for Ed25519) is missing, 2 on bad input.
"""
import base64
import json
import logging
import re
import sys

try:
    import dkim
    import nacl.signing  # noqa: F401  dkimpy needs it for ed25519-sha256; fail loudly, not per signature
except ImportError as e:
    sys.stderr.write("verify_dkim.py: python module missing (%s); install python3-dkim and python3-nacl\n" % e)
    sys.exit(3)


class ErrorLog(logging.Handler):
    """dkimpy reports key/DNS problems through its logger and returns False; keep the text."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def norm(name):
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.strip().rstrip(".").lower()


def tags_of(value):
    """d, s, a and h of one DKIM-Signature value, tolerant of malformed headers."""
    tags = {}
    for part in re.sub(rb"\s+", b"", value).split(b";"):
        if b"=" in part:
            k, v = part.split(b"=", 1)
            tags[k.decode("ascii", "replace")] = v.decode("utf-8", "replace")
    h = [x.lower() for x in tags.get("h", "").split(":") if x]
    return {"d": tags.get("d", ""), "s": tags.get("s", ""), "a": tags.get("a", ""), "h": h}


def main():
    try:
        req = json.load(sys.stdin)
        message = base64.b64decode(req["message"])
        records = {norm(k): v.encode("utf-8") for k, v in req.get("records", {}).items()}
    except Exception as e:  # noqa: BLE001
        sys.stderr.write("verify_dkim.py: bad request: %r\n" % e)
        return 2

    looked_up = []

    def dnsfunc(name, timeout=5):
        looked_up.append(norm(name))
        return records.get(norm(name))  # None: no such record

    # Parse once just to find the signature headers; each is then verified on a fresh object
    headers = [v for k, v in dkim.DKIM(message).headers if k.lower() == b"dkim-signature"]
    out = []
    for idx, value in enumerate(headers):
        sig = tags_of(value)
        log = logging.getLogger("verify_dkim.%d" % idx)
        log.propagate = False
        handler = ErrorLog()
        log.addHandler(handler)
        del looked_up[:]
        try:
            ok = bool(dkim.DKIM(message, logger=log).verify(idx=idx, dnsfunc=dnsfunc))
            error = None
            if not ok:
                error = "; ".join(handler.messages) or "signature did not verify"
                if looked_up and not any(n in records for n in looked_up):
                    error = "no key record for %s (%s)" % (looked_up[-1], error)
        except Exception as e:  # noqa: BLE001  dkimpy raises for malformed signatures/keys
            ok, error = False, "%s: %s" % (type(e).__name__, e)
        sig["ok"] = ok
        if error:
            sig["error"] = error
        out.append(sig)
    json.dump({"signatures": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
