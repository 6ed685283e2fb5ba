"""received linkbacks: one row per pingback or Webmention request, with its status page token

Revision ID: 0015_linkbacks
Revises: 0014_comments
Create Date: 2026-12-02 15:00:00

- ``linkback_request``: a received pingback (Pingback 1.0) or Webmention (W3C Recommendation)
  request, stored with the ``linkback.verify`` job that checks its source: the protocol, source
  and target, the post it names, its state (pending, accepted, refused, deleted), the interaction
  it made, the reason of a refusal or of the last failed try, and the token of its status page.

A new table only: nothing existing is rebuilt.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0015_linkbacks'
down_revision = '0014_comments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'linkback_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('protocol', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('source_host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('interaction_id', sa.Integer(), nullable=True),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['interaction_id'], ['interaction.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['post_id'], ['post.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token'),
    )
    op.create_index('ix_linkback_request_post_state', 'linkback_request', ['post_id', 'state'])
    op.create_index('ix_linkback_request_host_state', 'linkback_request', ['source_host', 'state'])
    op.create_index(op.f('ix_linkback_request_interaction_id'), 'linkback_request', ['interaction_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_linkback_request_interaction_id'), table_name='linkback_request')
    op.drop_index('ix_linkback_request_host_state', table_name='linkback_request')
    op.drop_index('ix_linkback_request_post_state', table_name='linkback_request')
    op.drop_table('linkback_request')
