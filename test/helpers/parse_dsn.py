#!/usr/bin/python3
# Parses a delivery status notification (RFC 3464) from stdin with Python's email package
# (an independent MIME parser) and prints what a test checks, as JSON.
import email
import email.policy
import json
import sys

msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {
    'contentType': msg.get_content_type(),
    'reportType': msg.get_param('report-type'),
    'from': msg.get('From'),
    'to': msg.get('To'),
    'subject': msg.get('Subject'),
    'autoSubmitted': msg.get('Auto-Submitted'),
    'defects': [type(d).__name__ for d in msg.defects],
    'parts': [],
    'perMessage': None,
    'perRecipient': [],
    'originalHeaders': None,
}
if msg.is_multipart():
    for part in msg.get_payload():
        out['parts'].append(part.get_content_type())
        out['defects'] += [type(d).__name__ for d in part.defects]
        if part.get_content_type() == 'message/delivery-status':
            # the email package parses the status groups as a list of header blocks
            blocks = part.get_payload()
            out['perMessage'] = dict(blocks[0].items())
            out['perRecipient'] = [dict(b.items()) for b in blocks[1:]]
        elif part.get_content_type() == 'text/rfc822-headers':
            out['originalHeaders'] = part.get_payload()
        elif part.get_content_type() == 'text/plain':
            out['text'] = part.get_payload()
print(json.dumps(out))
