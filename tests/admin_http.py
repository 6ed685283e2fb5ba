"""Shared pieces of the admin HTTP tests: the CSRF field of a form, and logging in through the form."""

from __future__ import annotations

import re

import httpx


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


async def login(client: httpx.AsyncClient, password: str, next_url: str = "/admin") -> httpx.Response:
    """GET the login form, then POST it with its CSRF token; returns the POST's response."""
    page = await client.get(f"/admin/login?next={next_url}")
    assert page.status_code == 200, page.text
    return await client.post("/admin/login", data={"csrf": csrf_of(page.text), "password": password,
                                                   "next": next_url})
