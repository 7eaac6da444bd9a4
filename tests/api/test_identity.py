"""Login, sessions with CSRF, workspaces, members, groups and API keys over HTTP."""

from __future__ import annotations

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, WORKSPACE, Api, MemberFactory


async def test_me_shows_the_admin_and_the_workspace(api: Api) -> None:
    response = await api.client.get("/me")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["email"] == ADMIN_EMAIL
    assert body["workspaces"] == [{"slug": WORKSPACE, "name": WORKSPACE, "role": "admin", "groups": []}]


async def test_no_or_bad_credentials_answer_401_problem(api: Api) -> None:
    async with api.client_with(None) as anonymous:
        response = await anonymous.get("/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    for token in ("nonsense", "lwk_abc_def", "lws_0123456789abcdef_secret"):
        async with api.client_with(token) as bad:
            assert (await bad.get("/me")).status_code == 401


async def test_login_session_cookie_needs_csrf_for_writes(api: Api) -> None:
    async with api.client_with(None) as browser:
        wrong = await browser.post("/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong password"})
        assert wrong.status_code == 401
        login = await browser.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        csrf = login.json()["csrf_token"]
        token = login.json()["token"]
        assert (await browser.get("/me")).status_code == 200  # the cookie is enough to read
        no_csrf = await browser.post(f"/workspaces/{WORKSPACE}/groups", json={"name": "ops", "members": []})
        assert no_csrf.status_code == 403
        with_csrf = await browser.post(
            f"/workspaces/{WORKSPACE}/groups", json={"name": "ops", "members": []}, headers={"X-CSRF-Token": csrf}
        )
        assert with_csrf.status_code == 201, with_csrf.text
        # The login token also works as a Bearer key, without CSRF, until logout.
        async with api.client_with(token) as bearer:
            assert (await bearer.get("/me")).json()["via"] == "session"
            assert (await bearer.post("/auth/logout")).status_code == 204
            assert (await bearer.get("/me")).status_code == 401


async def test_members_roles_and_groups(api: Api, as_member: MemberFactory) -> None:
    created = await api.client.post(
        f"/workspaces/{WORKSPACE}/members",
        json={"email": "Fin@Acme.test", "role": "operator", "password": "pw-12345678"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "fin@acme.test"
    group = await api.client.post(
        f"/workspaces/{WORKSPACE}/groups", json={"name": "finance", "members": ["fin@acme.test"]}
    )
    assert group.status_code == 201
    assert group.json()["members"] == ["fin@acme.test"]
    unknown = await api.client.put(f"/workspaces/{WORKSPACE}/groups/finance", json={"members": ["who@x.test"]})
    assert unknown.status_code == 422
    duplicate = await api.client.post(
        f"/workspaces/{WORKSPACE}/members", json={"email": "fin@acme.test", "role": "viewer"}
    )
    assert duplicate.status_code == 409
    # A non-admin may not manage members.
    viewer = await as_member("view@acme.test", "viewer")
    async with viewer:
        refused = await viewer.post(f"/workspaces/{WORKSPACE}/members", json={"email": "x@acme.test", "role": "admin"})
        assert refused.status_code == 403
        assert (await viewer.get(f"/workspaces/{WORKSPACE}/members")).status_code == 200
    # The last admin cannot be demoted.
    demote = await api.client.patch(f"/workspaces/{WORKSPACE}/members/{ADMIN_EMAIL}", json={"role": "viewer"})
    assert demote.status_code == 409


async def test_api_keys_are_shown_once_hashed_and_revocable(api: Api) -> None:
    created = await api.client.post(f"/workspaces/{WORKSPACE}/api-keys", json={"name": "ci", "role": "operator"})
    assert created.status_code == 201
    secret = created.json()["key"]
    key_id = created.json()["id"]
    listed = await api.client.get(f"/workspaces/{WORKSPACE}/api-keys")
    assert all("key" not in item for item in listed.json()["items"])
    assert secret not in listed.text
    async with api.client_with(secret) as ci:
        me = await ci.get("/me")
        assert me.json()["workspaces"][0]["role"] == "operator"
        assert (await api.client.delete(f"/workspaces/{WORKSPACE}/api-keys/{key_id}")).status_code == 204
        assert (await ci.get("/me")).status_code == 401


async def test_bad_bodies_are_problems(api: Api) -> None:
    unknown = await api.client.post("/workspaces", json={"slug": "beta", "colour": "red"})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert any(e["loc"][-1] == "colour" for e in unknown.json()["errors"])
    malformed = await api.client.post("/workspaces", content=b'{"slug": ', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    big = await api.client.post("/workspaces", content=b"x" * (api.settings.max_body_bytes + 1))
    assert big.status_code == 413
    bad_slug = await api.client.post("/workspaces", json={"slug": "Not A Slug"})
    assert bad_slug.status_code == 422
    missing_route = await api.client.get("/nowhere")
    assert missing_route.status_code == 404
    assert missing_route.headers["content-type"] == "application/problem+json"


async def test_key_of_one_workspace_sees_nothing_of_another(api: Api) -> None:
    async with api.client_with(None) as browser:
        login = await browser.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        token = login.json()["token"]
    async with api.client_with(token) as session:
        assert (await session.post("/workspaces", json={"slug": "beta"})).status_code == 201
        assert (await session.get("/workspaces/beta/members")).status_code == 200
    # The acme key does not reach beta, though its user is beta's admin.
    assert (await api.client.get("/workspaces/beta")).status_code == 404
    assert (await api.client.get("/workspaces/beta/members")).status_code == 404
    assert (await api.client.get("/workspaces/nope")).status_code == 404
