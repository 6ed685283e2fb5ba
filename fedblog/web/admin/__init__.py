"""The admin area at /admin: login, logout, dashboard, followers, "retry now", moderation, replies, import."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from fedblog.web.admin import imports, login, moderation, posts, profile, reply, views


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/admin", views.dashboard, name="admin"),
        Route("/admin/login", login.login_page, methods=["GET"], name="admin_login"),
        Route("/admin/login", login.login_submit, methods=["POST"], name="admin_login_submit"),
        Route("/admin/logout", login.logout, methods=["POST"], name="admin_logout"),
        Route("/admin/followers", views.followers, name="admin_followers"),
        Route("/admin/deliveries/retry", views.retry_deliveries, methods=["POST"], name="admin_retry"),
        Route("/admin/moderation", moderation.page, name="admin_moderation"),
        Route("/admin/moderation", moderation.bulk, methods=["POST"], name="admin_moderation_bulk"),
        Route("/admin/moderation/author", moderation.author, methods=["POST"], name="admin_moderation_author"),
        Route("/admin/moderation/rules/block", moderation.add_block, methods=["POST"], name="admin_block"),
        Route("/admin/moderation/rules/remove", moderation.remove_rule, methods=["POST"], name="admin_unrule"),
        Route("/admin/import", imports.import_page, name="admin_import"),
        Route("/admin/import", imports.import_upload, methods=["POST"], name="admin_import_upload"),
        Route("/admin/reply", reply.reply_page, name="admin_reply"),
        Route("/admin/reply", reply.reply_submit, methods=["POST"], name="admin_reply_submit"),
        Route("/admin/moderation/import", moderation.import_blocks, methods=["POST"], name="admin_block_import"),
        Route("/admin/posts", posts.post_list, name="admin_posts"),
        Route("/admin/posts/new", posts.new_post, methods=["GET"], name="admin_post_new"),
        Route("/admin/posts/new", posts.new_post_submit, methods=["POST"], name="admin_post_create"),
        Route("/admin/posts/{post_id}/edit", posts.edit_post, methods=["GET"], name="admin_post_edit"),
        Route("/admin/posts/{post_id}/edit", posts.edit_post_submit, methods=["POST"], name="admin_post_save"),
        Route("/admin/posts/{post_id}/delete", posts.confirm_delete, methods=["GET"], name="admin_post_delete"),
        Route("/admin/posts/{post_id}/delete", posts.delete_post, methods=["POST"], name="admin_post_delete_do"),
        *profile.routes(),
    ]
