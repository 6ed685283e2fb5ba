"""linkbacks sent: one row per page a post links to, and what notifying it gave

Revision ID: 0016_linkbacks_sent
Revises: 0015_linkbacks
Create Date: 2026-12-02 15:00:00

A new table only (``linkback_sent``): the Webmentions and pingbacks the blog sends for its posts
(fedblog/federation/linkback_send.py, docs/linkbacks-and-proofs.md "Sending"). Nothing else changes.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0016_linkbacks_sent'
down_revision = '0015_linkbacks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('linkback_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('linked', sa.Boolean(), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('endpoint_kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('post_id', 'target', name='uq_linkback_sent_post_target')
    )
    op.create_index(op.f('ix_linkback_sent_job_id'), 'linkback_sent', ['job_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_linkback_sent_job_id'), table_name='linkback_sent')
    op.drop_table('linkback_sent')
