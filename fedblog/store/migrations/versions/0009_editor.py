"""Editor: scheduled drafts, uploaded images and the posts that use them

Revision ID: 0009_editor
Revises: 0003_indexes
Create Date: 2026-12-02 12:30:00

- ``post.scheduled_at``: a draft the scheduler publishes at that time (indexed: the scheduler
  asks "what is due?" every few seconds).
- ``media``: an uploaded image (key = SHA-256 of the stored file, its path, type, size, alt text).
- ``post_media``: a post's cover and attachments, in order.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0009_editor'
down_revision = '0003_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN, nullable: no table rebuild on SQLite (a rebuild of ``post`` would cascade)
    op.add_column('post', sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_post_scheduled_at'), 'post', ['scheduled_at'], unique=False)
    op.create_table('media',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('media_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('alt', sqlmodel.sql.sqltypes.AutoString(length=1500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('post_media',
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('post_id', 'media_id')
    )
    op.create_index(op.f('ix_post_media_media_id'), 'post_media', ['media_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_post_media_media_id'), table_name='post_media')
    op.drop_table('post_media')
    op.drop_table('media')
    op.drop_index(op.f('ix_post_scheduled_at'), table_name='post')
    op.drop_column('post', 'scheduled_at')
