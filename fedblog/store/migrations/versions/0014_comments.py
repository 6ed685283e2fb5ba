"""comments as activities: the commenter's private email, consent to federate, evidence, guest keys

Revision ID: 0014_comments
Revises: 0013_actors_jobs
Create Date: 2026-12-02 14:50:00

- ``interaction.author_email``: a web commenter's email, for the blog's owner only (never shown,
  never federated).
- ``interaction.federated``: the comment is (or, once approved, will be) published to the
  fediverse as an activity of a local guest or site actor; a web comment only with its author's
  consent. Existing rows: false.
- ``interaction.evidence``: how the comment was authenticated, as JSON: for a fediverse reply the
  HTTP signature (scheme, key id, signed headers), for a local activity its integrity proof.
- ``actor.guest_key``: what makes a local guest or site actor stable (a digest of name + email, or
  name + website, or the site's origin); unique, NULL for remote actors.

Only ADD COLUMN and CREATE INDEX: no table rebuild on SQLite (a rebuild of ``interaction`` would
drop its version triggers).
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0014_comments'
down_revision = '0013_actors_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('interaction', sa.Column('author_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))
    op.add_column('interaction', sa.Column('federated', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('interaction', sa.Column('evidence', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('actor', sa.Column('guest_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.create_index(op.f('ix_actor_guest_key'), 'actor', ['guest_key'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_actor_guest_key'), table_name='actor')
    op.drop_column('actor', 'guest_key')
    op.drop_column('interaction', 'evidence')
    op.drop_column('interaction', 'federated')
    op.drop_column('interaction', 'author_email')
