"""Lints infra/template.yaml (or the template named as the one argument: dist/build's, which
deploys the packaged zip): cfn-lint on the template, the SAM transform of it linted again
(cfn-lint alone checks SAM resources shallowly), and least-privilege IAM (no wildcard action,
no "*" resource). Run by infra/check with the project's venv, and by tests/run on dist/."""

import json
import os
import subprocess
import sys
import tempfile

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "template.yaml")


class NoManagedPolicies:
    """The translator asks IAM for managed policies; offline there are none to ask for."""

    def load(self):
        return {}


def statements(node, path="Resources"):
    """Every IAM policy statement in the template, with where it is."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield path, node
        for key, value in node.items():
            yield from statements(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from statements(value, f"{path}[{index}]")


def as_list(value):
    return value if isinstance(value, list) else [value]


# Actions AWS defines no resource for: they can only be granted on "*".
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def iam_problems(template):
    problems = []
    for path, statement in statements(template.get("Resources", {})):
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{path}: NotAction/NotResource grant more than they name")
        for action in as_list(statement.get("Action", [])):
            if isinstance(action, str) and "*" in action:
                problems.append(f"{path}: wildcard action {action!r}")
        if "Principal" in statement:
            continue  # resource policies name their own resource
        if set(as_list(statement.get("Action", []))) <= RESOURCELESS_ACTIONS:
            continue
        for resource in as_list(statement.get("Resource", [])):
            if resource == "*" or (isinstance(resource, str) and resource.endswith(":*") and resource.count(":") <= 1):
                problems.append(f"{path}: resource {resource!r} is everything")
    return problems


def main():
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    path = sys.argv[1] if len(sys.argv) > 1 else TEMPLATE
    failed = False
    print(f"cfn-lint {os.path.relpath(path)}")
    failed |= subprocess.call(["cfn-lint", path]) != 0

    template, matches = decode(path)
    if matches:
        print(matches)
        return 1
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            code_uri = resource["Properties"]["CodeUri"]
            if path != TEMPLATE:
                # A packaged template deploys the zip beside it, built already.
                zip_path = os.path.join(os.path.dirname(path), code_uri)
                if "Metadata" in resource or not os.path.isfile(zip_path):
                    print(f"{path}: CodeUri {code_uri} is not a package beside it, or the function still builds")
                    return 1
            resource["Properties"]["CodeUri"] = "s3://placeholder-bucket/backdrop-lambda.zip"
    transformed = transform(json.loads(json.dumps(template)), {}, NoManagedPolicies())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(transformed, out, indent=1)
    print("cfn-lint on the SAM transform")
    failed |= subprocess.call(["cfn-lint", out.name]) != 0
    os.unlink(out.name)

    problems = iam_problems(transformed)
    for problem in problems:
        print(f"IAM: {problem}")
    failed |= bool(problems)
    print("infra lint:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
