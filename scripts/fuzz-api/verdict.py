"""Reads one schemathesis JUnit report and decides whether the API failed.

Failures (a check that did not hold) always count. Errors count when they are about the API
(the connection refused or reset, a timeout: the service stopped answering); schemathesis's
own crashes (Python tracebacks inside its generators, such as CPython 3.11's "AST
constructor recursion depth mismatch") are printed as warnings, since they say nothing
about the service.
"""

import sys
import xml.etree.ElementTree as ET

API_ERRORS = ("Network Error", "Connection", "timed out", "Timeout", "Server Error", "refused", "reset")


def main(path):
    root = ET.parse(path).getroot()
    failed = 0
    for case in root.iter("testcase"):
        for outcome in case:
            if outcome.tag not in ("failure", "error"):
                continue
            text = f"{outcome.get('message') or ''} {outcome.text or ''}"
            about_api = outcome.tag == "failure" or any(marker in text for marker in API_ERRORS)
            kind = "FAIL" if about_api else "tool error (ignored)"
            print(f"  {kind}: {case.get('name')}: {text.strip().splitlines()[0][:200]}")
            failed += about_api
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
