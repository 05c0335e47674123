"""Seeds a fresh opsd with keys and real operations, so that generated requests reach
success paths, and prints the keys as JSON: {"admin", "reader", "producer"}.

usage: seed.py BASE_URL ADMIN_KEY
"""

import json
import sys
import urllib.request

BASE, ADMIN = sys.argv[1], sys.argv[2]


def call(method, path, body=None, key=ADMIN):
    req = urllib.request.Request(BASE + path, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, data) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def key(name, role, projects):
    return call("POST", "/v1/api_keys", {"name": name, "role": role, "projects": projects})[
        "key_secret"
    ]


keys = {
    "admin": ADMIN,
    "reader": key("schemathesis-reader", "reader", ["proj-1"]),
    "producer": key("schemathesis-producer", "producer", ["proj-1", "0"]),
}

# proj-1 holds operations in every status; "0" is the project id Schemathesis draws
# first for a pattern, so its generated requests find operations there too.
kinds = ["vm", "volume", "vpc", "firewall_rule"]
for project in ["proj-1", "0"]:
    for i in range(24):
        op = call(
            "POST",
            "/v1/operations",
            {
                "project_id": project,
                "kind": kinds[i % len(kinds)],
                "type": ["create", "update", "delete", "restart"][i % 4],
                "resource_id": f"res-{i}",
                "details": {"changes": {"cpu": {"from": 2, "to": 4}}},
                "request_id": f"seed-{project}-{i}",
            },
        )
        path = f"/v1/operations/{op['id']}"
        step = i % 4
        if step >= 1:
            call("PATCH", path, {"status": "running", "progress": 10})
        if step == 2:
            call("PATCH", path, {"status": "done"})
        if step == 3:
            call(
                "PATCH",
                path,
                {
                    "status": "failed",
                    "error": {"errors": [{"code": "QUOTA", "message": "out of quota"}]},
                    "http_error_status_code": 429,
                    "http_error_message": "quota exceeded",
                },
            )

print(json.dumps(keys))
