"""schemathesis hooks for scripts/fuzz-api.sh.

A schema cannot say everything a field must be (an id that exists, a token a list issued, a
document that parses), so a well-formed request may still be refused with 400. Such a
refusal is documented only when it is a google.rpc.Status whose BadRequest details name the
fields at fault, and those fields are fields of the request as the document describes it.
This check replaces schemathesis's positive_data_acceptance, which would count every such
400 as a defect.
"""

import json
import re

import schemathesis


def _resolve(schema, root, depth=0):
    """Follows a local $ref (and allOf wrappers) to the schema it names."""
    while isinstance(schema, dict) and depth < 16:
        depth += 1
        if "$ref" in schema:
            node = root
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node.get(part, {})
            schema = node
        elif "allOf" in schema and len(schema["allOf"]) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            break
    return schema if isinstance(schema, dict) else {}


def _normal(name):
    return name.replace("_", "").lower()


def _request_fields(case):
    """Every name a field violation may start with for this operation."""
    operation = case.operation.definition.raw
    root = case.operation.schema.raw_schema
    names = set()
    for parameter in operation.get("parameters", []):
        names.add(_normal(parameter["name"].split(".")[0]))
        if "x-proto-field" in parameter:
            names.add(_normal(parameter["x-proto-field"].split(".")[0]))
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    body = _resolve(content.get("schema", {}), root)
    for name in body.get("properties", {}):
        names.add(_normal(name))
    for name in body.get("x-oneofs", {}):
        names.add(_normal(name))
    body_field = operation.get("x-body-field")
    if body_field:
        names.add(_normal(body_field))
    return names


@schemathesis.check
def refusals_name_a_documented_field(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        status = json.loads(response.text)
    except ValueError:
        raise AssertionError("a 400 that is not a google.rpc.Status")
    # FAILED_PRECONDITION is 400 too: the request is well formed but the state refuses it
    # (a history position from another epoch, a release that moved on), as documented.
    if status.get("code") == 9:
        return None
    violations = [
        violation
        for detail in status.get("details", [])
        for violation in detail.get("fieldViolations", [])
    ]
    if not violations:
        raise AssertionError(f"a 400 that names no field: {status.get('message')!r}")
    known = _request_fields(case)
    for violation in violations:
        top = re.split(r"[.\[]", violation.get("field", ""))[0]
        if _normal(top) not in known:
            raise AssertionError(
                f"a 400 naming `{violation.get('field')}`, which is not a field of this request "
                f"(known: {sorted(known)})"
            )
    return None
