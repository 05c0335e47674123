"""The console and the docs in headless Chromium, against the real binary: sign-in,
the live table, one operation, filters and paging against the API, who sees what,
sign-out, cross-site posts, hostile operation text, the docs viewer offline, and the
screenshots the README shows (saved under target/screenshots/)."""

import http.server
import threading
import time
import urllib.parse
import uuid

import pytest

CHANGES = {
    "cpu": {"from": 2, "to": 4},
    "name": {"from": "web-1", "to": "web-2"},
    "public": {"from": False, "to": True},
    "tags": {"from": ["a"], "to": ["a", "b"]},
}


def project():
    return f"con-{uuid.uuid4().hex[:8]}"


def seed(opsd, proj, n=6):
    """n operations in `proj`, in every state, oldest first."""
    ops = []
    for i in range(n):
        op = opsd.create(
            project_id=proj,
            kind=["vm", "volume", "vpc"][i % 3],
            type=["create", "update", "delete"][i % 3],
            resource_id=f"res-{i}",
            description=f"change {i}",
            details={"changes": CHANGES},
        )
        state = i % 4
        if state >= 1:
            opsd.patch(op["id"], status="running", progress=20 + i, status_message="working")
        if state == 2:
            opsd.patch(op["id"], status="done")
        if state == 3:
            opsd.patch(
                op["id"],
                status="failed",
                error={"errors": [{"code": "QUOTA_EXCEEDED", "message": "no cpu left", "location": "zone-a"}]},
                warnings=[{"code": "SLOW", "message": "took long", "data": [{"key": "s", "value": "42"}]}],
            )
        ops.append(opsd.get(f"/v1/operations/{op['id']}"))
    return ops


def navigate(tab, action):
    """Runs `action` (which changes the view) and waits for the new table's rows: the old
    table must be gone first, or its rows would be read as the new page's."""
    old = tab.page.query_selector("#ops-body")
    action()
    if old is not None:
        old.wait_for_element_state("hidden")
    tab.page.wait_for_selector("#ops-body[data-state=ready]")


def open_project(tab, proj, query=""):
    navigate(tab, lambda: tab.goto(f"#/?project={proj}{query}"))
    tab.page.wait_for_selector("#live.live", timeout=10_000)


def row_ids(page):
    return page.eval_on_selector_all("#ops-body tr[data-id]", "rows => rows.map(r => r.dataset.id)")


def test_sign_in_list_open_one_with_diffs_and_timeline(tab, opsd):
    proj = project()
    ops = seed(opsd, proj)
    tab.sign_in(opsd.key)
    open_project(tab, proj)
    assert row_ids(tab.page) == [op["id"] for op in reversed(ops)]
    assert tab.page.inner_text("#total") == f"{len(ops)} operations"
    tab.shot("operations")

    failed = ops[3]
    tab.page.click(f'tr[data-id="{failed["id"]}"]')
    tab.page.wait_for_selector("#diffs")
    diffs = tab.page.eval_on_selector_all(
        "#diffs tbody tr",
        """rows => rows.map(r => [r.cells[0].innerText,
            r.cells[1].querySelector('code').innerText, r.cells[1].querySelector('.type').innerText,
            r.cells[3].querySelector('code').innerText, r.cells[3].querySelector('.type').innerText])""",
    )
    assert diffs == [
        ["cpu", "2", "number", "4", "number"],
        ["name", "web-1", "string", "web-2", "string"],
        ["public", "false", "boolean", "true", "boolean"],
        ["tags", '["a"]', "array", '["a","b"]', "array"],
    ], diffs
    # Every field of the operation is shown.
    shown = tab.page.eval_on_selector_all("#fields th", "ths => ths.map(t => t.innerText)")
    for field in failed:
        if field not in ("details", "error", "warnings"):
            assert field in shown, field
    assert "QUOTA_EXCEEDED" in tab.page.inner_text("#errors")
    assert "no cpu left" in tab.page.inner_text("#errors")
    assert "SLOW" in tab.page.inner_text("#warnings")
    events = opsd.get(f"/v1/operations/{failed['id']}/events")["items"]
    items = tab.page.eval_on_selector_all("#timeline li", "lis => lis.map(l => l.innerText)")
    assert len(items) == len(events) == 3
    assert [e["status"] for e in events] == ["pending", "running", "failed"]
    for item, e in zip(items, events):
        assert f"v{e['version']}" in item and e["status"] in item
    tab.shot("operation")


def test_api_writes_appear_live_and_progress_moves(tab, opsd):
    proj = project()
    seed(opsd, proj, n=2)
    tab.sign_in(opsd.key)
    open_project(tab, proj)

    op = opsd.create(project_id=proj, kind="vm", type="create", resource_id="live-1")
    start = time.monotonic()
    tab.page.wait_for_selector(f'tr[data-id="{op["id"]}"]', timeout=1000)
    appeared = time.monotonic() - start
    assert appeared < 1.0
    assert row_ids(tab.page)[0] == op["id"], "a new operation goes on top"

    opsd.patch(op["id"], status="running", progress=10)
    bar = f'tr[data-id="{op["id"]}"] progress'
    tab.page.wait_for_function(f"() => document.querySelector('{bar}')?.value === 10", timeout=1000)
    opsd.patch(op["id"], progress=65, status_message="copying")
    tab.page.wait_for_function(f"() => document.querySelector('{bar}')?.value === 65", timeout=1000)
    assert "copying" in tab.page.inner_text(f'tr[data-id="{op["id"]}"]')

    # The open operation is live too: its progress and timeline follow the writes.
    tab.page.click(f'tr[data-id="{op["id"]}"]')
    tab.page.wait_for_selector("#timeline")
    opsd.patch(op["id"], progress=90)
    tab.page.wait_for_function(
        "() => document.querySelector('[data-field=progress] progress')?.value === 90", timeout=1000
    )
    assert len(tab.page.query_selector_all("#timeline li")) == 4
    print(f"new operation visible {appeared * 1000:.0f} ms after the API answered")


def walk_api(opsd, query):
    """Every page of a list, as the API gives it."""
    ids, cursor = [], None
    while True:
        q = dict(query)
        if cursor:
            q["cursor"] = cursor
        page = opsd.get("/v1/operations?" + urllib.parse.urlencode(q))
        ids.append([op["id"] for op in page["items"]])
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            return ids


def walk_browser(tab):
    pages = [row_ids(tab.page)]
    while tab.page.is_enabled("#next"):
        navigate(tab, lambda: tab.page.click("#next"))
        pages.append(row_ids(tab.page))
    return pages


def test_filters_sorts_and_paging_equal_the_api(tab, opsd):
    proj = project()
    ops = seed(opsd, proj, n=12)
    time.sleep(1.1)  # the form's time bounds have whole seconds: a second between halves
    ops += seed(opsd, proj, n=12)
    tab.sign_in(opsd.key)

    cases = [
        ({"kind": "vm"}, "created_at:asc", "5"),
        ({"status": "running"}, "updated_at:desc", "10"),
        ({"type": "update", "resource_id": "res-4"}, "created_at:desc", "10"),
        ({}, "updated_at:asc", "10"),
    ]
    for filters, sort, limit in cases:
        navigate(tab, lambda: tab.goto(f"#/?project={proj}"))
        for name in ("kind", "status", "type"):
            tab.page.select_option(f"#f-{name}", filters.get(name, ""))
        tab.page.fill("#f-resource_id", filters.get("resource_id", ""))
        tab.page.select_option("#f-sort", sort)
        tab.page.select_option("#f-limit", limit)
        navigate(tab, lambda: tab.page.click("#filters button[type=submit]"))
        assert f"sort={urllib.parse.quote(sort)}" in tab.page.evaluate("location.hash")
        browser_pages = walk_browser(tab)
        api_pages = walk_api(opsd, {"project_id": proj, **filters, "sort": sort, "limit": limit})
        assert browser_pages == api_pages, (filters, sort)
        assert sum(map(len, api_pages)) > 0, (filters, sort)

    # Time range: the browser's bounds (whole seconds, from the form) give the API's answer.
    mid = ops[12]["created_at"]
    navigate(tab, lambda: tab.goto(f"#/?project={proj}&created_at_min={urllib.parse.quote(mid)}&sort=created_at:asc&limit=100"))
    # Round-trips the bound through the form's datetime-local field (whole seconds).
    navigate(tab, lambda: tab.page.click("#filters button[type=submit]"))
    assert "created_at_min" in tab.page.evaluate("location.hash")
    hash_query = urllib.parse.parse_qs(tab.page.evaluate("location.hash").split("?", 1)[1])
    used = {k: v[0] for k, v in hash_query.items() if k != "project"}
    api = walk_api(opsd, {"project_id": proj, **used})
    assert walk_browser(tab) == api
    assert [op["id"] for op in ops[12:]] == api[0]

    # Going back a page gives the page before.
    navigate(tab, lambda: tab.goto(f"#/?project={proj}&limit=5"))
    first = row_ids(tab.page)
    navigate(tab, lambda: tab.page.click("#next"))
    second = row_ids(tab.page)
    assert "cursor=" in tab.page.evaluate("location.hash")
    assert len(second) == 5 and not set(first) & set(second)
    navigate(tab, lambda: tab.page.click("#prev"))
    assert row_ids(tab.page) == first


def test_reader_sees_only_its_projects(tab, opsd):
    mine, theirs = project(), project()
    seed(opsd, mine, n=2)
    hidden = seed(opsd, theirs, n=2)
    key = opsd.mint("reader", [mine], name="reader-console")
    tab.sign_in(key["key_secret"])
    options = tab.page.eval_on_selector_all("#project option", "os => os.map(o => o.value)")
    assert options == [mine]
    assert "reader-console · reader" in tab.page.inner_text("#whoami")
    # Asking for the other project in the URL changes nothing.
    tab.goto(f"#/?project={theirs}")
    tab.page.wait_for_selector("#ops-body tr")
    assert tab.page.input_value("#project") == mine
    assert not set(row_ids(tab.page)) & {op["id"] for op in hidden}
    # An operation of the other project by id: not found, as in the API.
    tab.goto(f"#/op/{hidden[0]['id']}")
    tab.page.wait_for_selector("main .error")
    assert "No such operation" in tab.page.inner_text("main")


def test_wrong_key_cannot_sign_in(tab, opsd):
    tab.page.goto(opsd.base + "/console")
    tab.page.fill("#key", "opsd_" + "0" * 64)
    with tab.page.expect_response(lambda r: r.url.endswith("/console/sign-in")) as resp:
        tab.page.click("button[type=submit]")
    assert resp.value.status == 401
    assert "not valid" in tab.page.inner_text(".error")
    assert tab.context.cookies() == []
    tab.page.goto(opsd.base + "/console")
    assert tab.page.query_selector("#key") is not None


def test_sign_out_ends_the_session(tab, opsd):
    tab.sign_in(opsd.key)
    assert [c["name"] for c in tab.context.cookies()] == ["opsd_session"]
    cookie = tab.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie") == "", "the session is not readable by scripts"
    secret = cookie["value"]
    tab.page.click("#sign-out")
    tab.page.wait_for_selector("#key")
    assert tab.context.cookies() == []
    # The old cookie is dead on the server too, not only forgotten by the browser.
    status, _ = opsd.request("GET", "/v1/projects", headers={"cookie": f"opsd_session={secret}", "authorization": ""})
    assert status == 401


class Attacker(http.server.BaseHTTPRequestHandler):
    """Serves a page with forms that post to opsd, as another site would."""

    target = ""

    def do_GET(self):
        t = self.target
        body = f"""<!doctype html><html><body>
<form id="out" method="post" action="{t}/console/sign-out"><button id="b-out">x</button></form>
<form id="create" method="post" action="{t}/v1/operations" enctype="text/plain">
<input name='{{"project_id":"evil","kind":"vm","type":"create","resource_id":"x","a":"' value='"}}'>
<button id="b-create">y</button></form></body></html>"""
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_cross_site_form_posts_are_refused(tab, opsd, host):
    """From another origin on the same site (127.0.0.1, another port: the cookie is sent,
    Origin and the missing CSRF token refuse it) and from another site (localhost: the
    SameSite=Strict cookie is not sent at all)."""
    tab.sign_in(opsd.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    Attacker.target = opsd.base
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        attacker = f"http://{host}:{server.server_address[1]}/"
        for button, path in (("#b-create", "/v1/operations"), ("#b-out", "/console/sign-out")):
            tab.page.goto(attacker)
            with tab.page.expect_response(lambda r: r.url.endswith(path)) as resp:
                tab.page.click(button)
            assert resp.value.status in (401, 403), (path, resp.value.status)
    finally:
        server.shutdown()
    # Still signed in, and nothing was created.
    tab.page.goto(opsd.base + "/console")
    tab.page.wait_for_selector("#whoami:not(:empty)")
    assert opsd.get("/v1/projects")["items"] == [] or all(
        p["project_id"] != "evil" for p in opsd.get("/v1/projects")["items"]
    )


PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "javascript:window.__pwned='link'",
]


def test_hostile_operation_text_executes_nothing(tab, opsd):
    proj = project()
    script, img, link = PAYLOADS
    op = opsd.create(
        project_id=proj, kind="vm", type="update", resource_id="vm-x",
        description=img, user=script, target_link=link,
        details={"changes": {"note": {"from": script, "to": img}, "url": {"from": link, "to": [script, img]}}},
    )
    opsd.patch(op["id"], status="running", status_message=img)
    opsd.patch(
        op["id"], status="failed",
        error={"errors": [{"code": "X", "message": script, "location": link}]},
        warnings=[{"code": "W", "message": img, "data": [{"key": "k", "value": link}]}],
    )
    tab.sign_in(opsd.key)
    open_project(tab, proj)
    tab.page.click(f'tr[data-id="{op["id"]}"]')
    tab.page.wait_for_selector("#timeline")
    tab.goto("#/attention")
    tab.page.wait_for_selector("#att-failed")
    tab.goto(f"#/op/{op['id']}")
    tab.page.wait_for_selector("#timeline")
    tab.page.wait_for_timeout(300)  # time for an onerror handler, had an <img> been made
    assert tab.page.evaluate("window.__pwned") is None
    assert tab.page.evaluate("document.querySelectorAll('main img, main script, main iframe').length") == 0
    assert tab.page.evaluate("document.querySelectorAll('[href^=\"javascript\"], [src^=\"javascript\"]').length") == 0
    text = tab.page.inner_text("main")
    for p in PAYLOADS:
        assert p in text, p  # shown, as text


def test_attention_and_picture(tab, opsd):
    proj = project()
    for _ in range(5):  # usual vm/restart run: quick
        op = opsd.create(project_id=proj, kind="vm", type="restart", resource_id="vm-q")
        opsd.patch(op["id"], status="running")
        opsd.patch(op["id"], status="done")
    slow = opsd.create(project_id=proj, kind="vm", type="restart", resource_id="vm-slow")
    opsd.patch(slow["id"], status="running", progress=40)
    unknown = opsd.create(project_id=proj, kind="volume", type="update", resource_id="vol-u")
    opsd.patch(unknown["id"], status="unknown", status_message="worker vanished")
    seed(opsd, proj, n=8)
    opsd.create(project_id=proj, kind="vpc", type="create", resource_id="vpc-lease")
    status, claimed = opsd.request(
        "POST", "/v1/operations/claim",
        {"project_id": proj, "kinds": ["vpc"], "lease_seconds": 4, "worker": "host-7"},
    )
    assert status == 200, claimed
    time.sleep(2.5)  # less than half of the 4 s lease left; the slow run is past usual

    tab.sign_in(opsd.key)
    tab.goto(f"#/attention?project={proj}")
    tab.page.wait_for_selector("#att-leases")
    assert unknown["id"] in tab.page.inner_text("#att-unknown")
    assert "QUOTA_EXCEEDED" in tab.page.inner_text("#att-failed")
    assert slow["id"] in tab.page.inner_text("#att-long")
    assert "host-7" in tab.page.inner_text("#att-leases")
    tab.shot("attention")

    tab.goto(f"#/picture?project={proj}&hours=1")
    tab.page.wait_for_selector("#activity rect")
    stats = opsd.get(f"/v1/operations/stats?project_id={proj}&hours=1")
    bars = tab.page.eval_on_selector_all("#activity rect", "rs => rs.length")
    assert bars == len(stats["per_minute"])
    rows = tab.page.eval_on_selector_all("#durations tbody tr", "rs => rs.map(r => r.cells[0].innerText + '/' + r.cells[1].innerText)")
    assert rows == [f"{d['kind']}/{d['type']}" for d in stats["durations"]]
    tab.shot("picture")


def test_docs_render_and_try_a_request_without_leaving_loopback(tab, opsd):
    tab.sign_in(opsd.key)
    tab.page.goto(opsd.base + "/docs")
    tab.page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    text = tab.page.inner_text(".swagger-ui")
    for path in ("/v1/operations", "/v1/operations/{operation_id}", "/v1/operations/stats", "/v1/projects"):
        assert path in text, path
    tab.page.wait_for_selector(".swagger-ui section.models")
    # Try GET /v1/projects with the session.
    block = tab.page.locator("#operations-console-projects")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("button.execute").click()
    tab.page.wait_for_selector("#operations-console-projects .live-responses-table tbody .response-col_status")
    status = block.locator(".live-responses-table tbody .response-col_status").first.inner_text()
    assert status.strip().startswith("200"), status
    tab.page.evaluate("() => window.scrollTo(0, 0)")
    tab.shot("docs", full_page=False)
    outside = [u for u in tab.requests if not (u.startswith(opsd.base) or u.startswith("data:"))]
    assert outside == [], outside
