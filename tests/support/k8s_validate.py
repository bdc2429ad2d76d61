#!/usr/bin/python3
"""Validate Kubernetes manifests offline against vendored schemas, strictly.

    k8s_validate.py SCHEMAS_DIR FILE...

SCHEMAS_DIR is tests/fixtures/schemas (see its README). Built-in kinds are checked against
kubernetes-v1.33.0/<kind>-<group>-<version>.json, monitoring.coreos.com/v1 kinds against
prometheus-operator-v0.84.1/<kind>-v1.yaml with unknown fields refused and metadata checked as
ObjectMeta. Prints `FILE: Kind/name: OK` or one line per problem (`FILE: Kind/name: path:
message`); exits 1 if any document fails or has no schema here.
"""
import json
import os
import sys

import jsonschema
import yaml


def strict(node):
    """additionalProperties: false on every object schema that lists properties and says
    nothing about others."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def kubernetes_schema(root, api_version, kind):
    group, _, version = api_version.rpartition("/")
    group = group.split(".")[0]
    name = "-".join(p for p in [kind.lower(), group, version] if p)
    path = os.path.join(root, "kubernetes-v1.33.0", name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def crd_schema(root, api_version, kind):
    if api_version != "monitoring.coreos.com/v1":
        return None
    path = os.path.join(root, "prometheus-operator-v0.84.1", kind.lower() + "-v1.yaml")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        schema = strict(yaml.safe_load(f))
    # metadata: Kubernetes' ObjectMeta, from any built-in kind's schema.
    meta = kubernetes_schema(root, "v1", "ConfigMap")
    schema.setdefault("$defs", {}).update(meta["$defs"])
    schema["properties"]["metadata"] = {
        "$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    schema["properties"]["apiVersion"] = {"enum": [api_version]}
    schema["properties"]["kind"] = {"enum": [kind]}
    return schema


def path_of(error):
    return ".".join(str(p) for p in error.absolute_path) or "(top)"


def main(root, files):
    failed = False
    for file in files:
        with open(file) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        if not docs:
            print("%s: no documents" % file)
            failed = True
        for doc in docs:
            kind = doc.get("kind", "?")
            api = doc.get("apiVersion", "?")
            who = "%s/%s" % (kind, (doc.get("metadata") or {}).get("name", "?"))
            schema = kubernetes_schema(root, api, kind) or crd_schema(root, api, kind)
            if schema is None:
                print("%s: %s: no schema here for %s %s" % (file, who, api, kind))
                failed = True
                continue
            cls = jsonschema.validators.validator_for(schema)
            errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
            for e in errors:
                print("%s: %s: %s: %s" % (file, who, path_of(e), e.message))
            if errors:
                failed = True
            else:
                print("%s: %s: OK" % (file, who))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
