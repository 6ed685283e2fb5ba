"""admin: sessions of the owner, failed logins (rate limit), follower.created_at index (dashboard chart)

Revision ID: 0007_admin
Revises: 0004_post_ids
Create Date: 2026-12-02 11:50:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0007_admin'
down_revision = '0004_post_ids'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_session',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_admin_session_expires_at'), 'admin_session', ['expires_at'], unique=False)
    op.create_table('admin_login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_admin_login_failure_ip'), 'admin_login_failure', ['ip'], unique=False)
    op.create_index(op.f('ix_admin_login_failure_at'), 'admin_login_failure', ['at'], unique=False)
    op.create_index(op.f('ix_follower_created_at'), 'follower', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_follower_created_at'), table_name='follower')
    op.drop_index(op.f('ix_admin_login_failure_at'), table_name='admin_login_failure')
    op.drop_index(op.f('ix_admin_login_failure_ip'), table_name='admin_login_failure')
    op.drop_table('admin_login_failure')
    op.drop_index(op.f('ix_admin_session_expires_at'), table_name='admin_session')
    op.drop_table('admin_session')
