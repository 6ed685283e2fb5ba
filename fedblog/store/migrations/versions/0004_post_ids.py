"""post ids that survive deletion; the sender's own edit time of remote replies

Revision ID: 0004_post_ids
Revises: 0005_profile
Create Date: 2026-12-02 11:30:00

- ``post.ap_path``: the path of the post's ActivityPub id. Existing posts keep the id they were
  published under (``/posts/<slug>``); a post published again under a deleted post's slug gets
  ``/posts/<slug>/2``, ``/3``... because remote servers refuse a deleted id for good.
- ``interaction.remote_updated_at``: the sender's ``updated`` time as sent (not clamped to our
  clock), so that two edits are ordered by the sender's own clock.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0004_post_ids'
down_revision = '0005_profile'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a default, then fill it: no table rebuild, which on SQLite would drop and
    # re-create ``post`` and cascade-delete every interaction of every post
    op.add_column('post', sa.Column(
        'ap_path', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False, server_default=''))
    op.execute("UPDATE post SET ap_path = '/posts/' || slug")
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('post', 'ap_path', server_default=None)
    op.create_index(op.f('ix_post_ap_path'), 'post', ['ap_path'], unique=True)
    op.add_column('interaction', sa.Column('remote_updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite >= 3.35 has it): a batch rebuild of ``post`` would cascade-delete
    # every interaction on SQLite
    op.drop_index(op.f('ix_post_ap_path'), table_name='post')
    op.drop_column('interaction', 'remote_updated_at')
    op.drop_column('post', 'ap_path')
