"""The admin area at /admin: login, logout, dashboard, followers, "retry now"."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from fedblog.web.admin import login, profile, views


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/admin", views.dashboard, name="admin"),
        Route("/admin/login", login.login_page, methods=["GET"], name="admin_login"),
        Route("/admin/login", login.login_submit, methods=["POST"], name="admin_login_submit"),
        Route("/admin/logout", login.logout, methods=["POST"], name="admin_logout"),
        Route("/admin/followers", views.followers, name="admin_followers"),
        Route("/admin/deliveries/retry", views.retry_deliveries, methods=["POST"], name="admin_retry"),
        *profile.routes(),
    ]
