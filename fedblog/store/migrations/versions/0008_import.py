"""WordPress import: old permalinks, imported ids, the post's source format

Revision ID: 0008_import
Revises: 0007_admin
Create Date: 2026-12-02 12:00:00

- ``post.content_format``: ``markdown`` (written here) or ``html`` (imported from WordPress);
  ``content_md`` holds the source in that format.
- ``legacy_path``: an old WordPress URL of an imported post, answered with a 301 to the post.
- ``import_item``: each imported WordPress post and comment by (site, kind, WordPress id), so a
  second import adds nothing; a commenter's email is kept here, private.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0008_import'
down_revision = '0007_admin'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a server default: no table rebuild (on SQLite a rebuild of ``post`` would
    # cascade-delete every interaction)
    op.add_column('post', sa.Column(
        'content_format', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default='markdown'))
    op.create_table('legacy_path',
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('path')
    )
    op.create_index(op.f('ix_legacy_path_post_id'), 'legacy_path', ['post_id'], unique=False)
    op.create_table('import_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('wp_id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('interaction_id', sa.Integer(), nullable=True),
    sa.Column('wp_parent_id', sa.Integer(), nullable=True),
    sa.Column('author_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interaction.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'kind', 'wp_id', name='uq_import_item_source_kind_wp_id')
    )
    op.create_index(op.f('ix_import_item_interaction_id'), 'import_item', ['interaction_id'], unique=False)
    op.create_index(op.f('ix_import_item_post_id'), 'import_item', ['post_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_import_item_post_id'), table_name='import_item')
    op.drop_index(op.f('ix_import_item_interaction_id'), table_name='import_item')
    op.drop_table('import_item')
    op.drop_index(op.f('ix_legacy_path_post_id'), table_name='legacy_path')
    op.drop_table('legacy_path')
    op.drop_column('post', 'content_format')
