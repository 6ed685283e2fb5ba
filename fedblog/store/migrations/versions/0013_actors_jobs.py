"""keys per local actor, the sending actor of an activity, job kinds on the delivery queue

Revision ID: 0013_actors_jobs
Revises: 0009_editor
Create Date: 2026-12-02 12:45:00

- ``local_key``: one row per local actor (``owner``: "blog" or "guest:<Actor.id>"); the blog's
  existing row is kept as the blog actor's. ``rsa_private_pem`` may be NULL: an actor's RSA key
  is made when it first signs a delivery.
- ``activity.actor``: the local actor that sends the activity and signs its deliveries; existing
  rows are the blog's (server default "blog").
- ``delivery.kind`` ("deliver" for every existing row) and ``delivery.payload``: other background
  jobs share the queue; such a row has no activity, so ``activity_id`` may be NULL.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0013_actors_jobs'
down_revision = '0009_editor'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a server default: no rebuild of ``activity`` (on SQLite a rebuild would
    # cascade-delete its deliveries)
    op.add_column('activity', sa.Column(
        'actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False, server_default='blog'))
    # ``delivery`` and ``local_key`` are referenced by no table: SQLite may rebuild them
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False, server_default='deliver'))
        batch_op.add_column(sa.Column('payload', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.alter_column('activity_id', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('local_key', schema=None) as batch_op:
        batch_op.alter_column('rsa_private_pem', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE kind <> 'deliver' OR activity_id IS NULL")
    op.execute("DELETE FROM local_key WHERE rsa_private_pem IS NULL")
    with op.batch_alter_table('local_key', schema=None) as batch_op:
        batch_op.alter_column('rsa_private_pem', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.alter_column('activity_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('payload')
        batch_op.drop_column('kind')
    op.drop_column('activity', 'actor')  # ALTER TABLE DROP COLUMN: no rebuild (SQLite >= 3.35)
