#!/usr/bin/python3
# Reads a TLS report (RFC 8460) the way a receiver would, independently of the relay's code:
#   parse_tlsrpt.py mail    < message   the MIME message (Python's email package)
#   parse_tlsrpt.py gzip    < body      a POSTed application/tlsrpt+gzip body
# and validates the gunzipped JSON against test/fixtures/tlsrpt-report.schema.json with
# Debian's python3-jsonschema. Prints one JSON object: what was found, and every problem.
import email
import email.policy
import gzip
import json
import os
import sys

import jsonschema

SCHEMA = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'tlsrpt-report.schema.json')


def check(gzipped):
    out = {}
    try:
        report = json.loads(gzip.decompress(gzipped).decode('utf-8'))
    except Exception as e:  # noqa: BLE001 - reported, not raised
        return {'report': None, 'schema_errors': ['not gzipped JSON: %s' % e]}
    with open(SCHEMA) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    out['report'] = report
    out['schema_errors'] = ['%s: %s' % ('/'.join(str(p) for p in e.absolute_path), e.message) for e in validator.iter_errors(report)]
    return out


def main():
    mode = sys.argv[1]
    data = sys.stdin.buffer.read()
    if mode == 'gzip':
        print(json.dumps(check(data)))
        return
    msg = email.message_from_bytes(data, policy=email.policy.default)
    out = {
        'defects': [type(d).__name__ for d in msg.defects],
        'headers': {k: str(msg[k]) for k in ['From', 'To', 'Subject', 'Date', 'Message-ID', 'TLS-Report-Domain', 'TLS-Report-Submitter', 'TLS-Required', 'Auto-Submitted', 'MIME-Version'] if msg[k] is not None},
        'content_type': msg.get_content_type(),
        'report_type': msg.get_param('report-type'),
        'parts': [],
    }
    gz = None
    for part in msg.iter_parts() if msg.is_multipart() else []:
        out['defects'] += [type(d).__name__ for d in part.defects]
        out['parts'].append({
            'content_type': part.get_content_type(),
            'filename': part.get_filename(),
            'disposition': part.get_content_disposition(),
            'cte': part.get('Content-Transfer-Encoding'),
        })
        if part.get_content_type() == 'application/tlsrpt+gzip':
            gz = part.get_payload(decode=True)
        elif part.get_content_type() == 'text/plain':
            out['text'] = part.get_content()
    out.update(check(gz) if gz is not None else {'report': None, 'schema_errors': ['no application/tlsrpt+gzip part']})
    print(json.dumps(out))


main()
