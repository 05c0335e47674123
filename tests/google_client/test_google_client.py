"""Google's own client library (google-api-python-client, deploymentmanager v2 from its
static discovery document) against opsd, with only the endpoint changed."""

import json

import httplib2
import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

PROJECT = "google-compat"


def client(opsd, key=None):
    """The library's client with only the endpoint changed; the opsd key goes as Google's
    API key (`?key=`), as developerKey does for Google's own APIs."""
    return discovery.build(
        "deploymentmanager",
        "v2",
        client_options={"api_endpoint": opsd.base + "/"},
        credentials=AnonymousCredentials(),
        developerKey=key or opsd.key,
        static_discovery=True,
    )


@pytest.fixture(scope="module")
def seeded(opsd):
    """Twelve operations in several states, plus one in another project."""
    ops = []
    for i in range(12):
        op = opsd.create(
            project_id=PROJECT,
            kind="vm" if i % 2 else "volume",
            type=["create", "update", "delete", "restart"][i % 4],
            resource_id=f"res-{i}",
            request_id=f"req-{i}",
            user=f"user{i % 3}@example.com",
            zone="eu-west-1a" if i % 3 == 0 else None,
            description=f"operation number {i}",
        )
        if i % 3 == 1:
            op = opsd.patch(op["id"], status="running", progress=40, status_message="working")
        elif i % 3 == 2:
            opsd.patch(op["id"], status="running")
            if i % 2:
                op = opsd.patch(op["id"], status="done")
            else:
                op = opsd.patch(
                    op["id"],
                    status="failed",
                    error={"errors": [{"code": "QUOTA", "message": "out of quota", "location": "size"}]},
                    http_error_status_code=403,
                    http_error_message="FORBIDDEN",
                )
        ops.append(op)
    opsd.create(project_id="someone-else", kind="vm", type="create", resource_id="x")
    return ops


def list_all(service, **kwargs):
    """Follows list_next until it returns None, as users of the library do."""
    names, pages = [], 0
    request = service.operations().list(project=PROJECT, **kwargs)
    while request is not None:
        response = request.execute()
        pages += 1
        assert pages < 100, "pagination does not end"
        names += [op["name"] for op in response.get("operations", [])]
        request = service.operations().list_next(request, response)
    return names, pages


def google_name(op):
    return "operation-" + op["id"]


def test_list_follows_pages_to_the_end(opsd, seeded):
    names, pages = list_all(client(opsd), maxResults=5)
    assert sorted(names) == names, "default order is by name"
    assert set(names) == {google_name(op) for op in seeded}
    assert pages == 3


def test_list_filters_and_order(opsd, seeded):
    service = client(opsd)
    done = [op for op in seeded if op["status"] in ("done", "failed")]
    names, _ = list_all(service, filter="status = DONE", orderBy="creationTimestamp desc", maxResults=2)
    assert names == [google_name(op) for op in sorted(done, key=lambda o: o["created_at"], reverse=True)]

    names, _ = list_all(service, filter='(operationType = insert) OR (zone:*)', maxResults=3)
    expected = [op for op in seeded if op["type"] == "create" or op.get("zone")]
    assert sorted(names) == sorted(google_name(op) for op in expected)

    names, _ = list_all(service, filter="(user eq 'user1@.*') (status ne DONE)", maxResults=4)
    expected = [op for op in seeded if op.get("user") == "user1@example.com" and op["status"] not in ("done", "failed")]
    assert sorted(names) == sorted(google_name(op) for op in expected)

    names, _ = list_all(service, filter="progress >= 40 AND NOT status = PENDING")
    expected = [op for op in seeded if op["progress"] >= 40]
    assert sorted(names) == sorted(google_name(op) for op in expected)


def test_filtered_pages_are_full(opsd, seeded):
    response = client(opsd).operations().list(project=PROJECT, filter="status != PENDING", maxResults=3).execute()
    assert len(response["operations"]) == 3
    assert "nextPageToken" in response


def test_get_and_representation(opsd, seeded):
    service = client(opsd)
    failed = next(op for op in seeded if op["status"] == "failed")
    got = service.operations().get(project=PROJECT, operation=google_name(failed)).execute()
    assert got["kind"] == "deploymentmanager#operation"
    assert got["name"] == google_name(failed)
    assert got["status"] == "DONE"
    assert got["error"]["errors"] == [{"code": "QUOTA", "message": "out of quota", "location": "size"}]
    assert got["httpErrorStatusCode"] == 403
    assert got["httpErrorMessage"] == "FORBIDDEN"
    assert got["clientOperationId"] == failed["request_id"]
    assert got["id"].isdigit()
    assert got["selfLink"].endswith(f"/deploymentmanager/v2/projects/{PROJECT}/global/operations/{got['name']}")
    pending = next(op for op in seeded if op["status"] == "pending")
    got = service.operations().get(project=PROJECT, operation=google_name(pending)).execute()
    assert "startTime" not in got and "endTime" not in got and "error" not in got


def test_nirvana_and_google_views_agree(opsd, seeded):
    service = client(opsd)
    status_map = {"pending": "PENDING", "running": "RUNNING", "unknown": "RUNNING", "done": "DONE", "failed": "DONE"}
    type_map = {"create": "insert", "update": "update", "delete": "delete", "restart": "restart"}
    ids = set()
    for op in seeded:
        _, nirvana = opsd.request("GET", f"/v1/operations/{op['id']}")
        google = service.operations().get(project=PROJECT, operation=google_name(op)).execute()
        assert google["status"] == status_map[nirvana["status"]]
        assert google["operationType"] == type_map[nirvana["type"]]
        assert google["insertTime"] == nirvana["created_at"]
        assert google.get("startTime") == nirvana.get("started_at")
        assert google.get("endTime") == nirvana.get("ended_at")
        assert google["progress"] == nirvana["progress"]
        ids.add(google["id"])
    assert len(ids) == len(seeded)


def test_partial_responses(opsd, seeded):
    response = client(opsd).operations().list(
        project=PROJECT, maxResults=2, fields="operations(name,status),nextPageToken"
    ).execute()
    assert set(response) == {"operations", "nextPageToken"}
    assert all(set(op) == {"name", "status"} for op in response["operations"])


def test_not_found_is_an_http_error(opsd, seeded):
    service = client(opsd)
    missing = "operation-00000000-0000-7000-8000-000000000000"
    with pytest.raises(HttpError) as err:
        service.operations().get(project=PROJECT, operation=missing).execute()
    assert err.value.resp.status == 404
    body = json.loads(err.value.content)
    assert body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["errors"][0]["reason"] == "notFound"
    # Another project's operation is not found either.
    with pytest.raises(HttpError) as err:
        service.operations().get(project="someone-else", operation=google_name(seeded[0])).execute()
    assert err.value.resp.status == 404


def test_malformed_filter_is_a_400_that_says_where(opsd, seeded):
    with pytest.raises(HttpError) as err:
        client(opsd).operations().list(project=PROJECT, filter="status = DONE AND (").execute()
    assert err.value.resp.status == 400
    message = json.loads(err.value.content)["error"]["message"]
    assert "position" in message, message
    with pytest.raises(HttpError) as err:
        client(opsd).operations().list(project=PROJECT, filter="(name eq 'a') AND status = DONE").execute()
    assert err.value.resp.status == 400


def test_a_missing_or_wrong_key_is_a_401(opsd, seeded):
    # With credentials, the library answers a 401 by trying to refresh them; a plain
    # transport shows the 401 itself.
    service = discovery.build(
        "deploymentmanager",
        "v2",
        client_options={"api_endpoint": opsd.base + "/"},
        http=httplib2.Http(),
        developerKey="opsd_not-a-key",
        static_discovery=True,
    )
    with pytest.raises(HttpError) as err:
        service.operations().list(project=PROJECT).execute()
    assert err.value.resp.status == 401
    assert json.loads(err.value.content)["error"]["status"] == "UNAUTHENTICATED"
