#!/usr/bin/python3
"""An independent strict reading of a message's From field: Python's email.headerregistry
(policy.default), as mail clients and DMARC verifiers written in Python read it.

stdin:  one JSON string per line: the base64 of a whole message (or of a header section)
stdout: one JSON object per line: {"addresses": [[display_name, username, domain], ...],
        "defects": [...]} or {"error": "..."} when Python cannot read a From at all.
"""
import base64
import json
import sys
from email import message_from_bytes, policy

for line in sys.stdin:
    raw = base64.b64decode(json.loads(line))
    try:
        field = message_from_bytes(raw, policy=policy.default)['From']
        if field is None:
            print(json.dumps({"addresses": [], "defects": ["no From"]}))
            continue
        print(json.dumps({
            "addresses": [[a.display_name, a.username, a.domain] for a in field.addresses],
            "defects": [type(d).__name__ for d in field.defects],
        }))
    except Exception as e:  # noqa: BLE001  any failure to read is an answer, not a crash
        print(json.dumps({"error": repr(e)}))
    sys.stdout.flush()
