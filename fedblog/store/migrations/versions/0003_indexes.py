"""read path: composite indexes for the hot queries; post.version bumped by triggers

Revision ID: 0003_indexes
Revises: 0008_import
Create Date: 2026-12-02 11:30:00

The indexes put the equality columns of each hot query first and its ORDER BY columns last, so
the database reads only the rows of one post, already in display order (no sort, no scan of other
posts' rows). ``post.version`` is bumped by triggers, in the same transaction as any change to a
post, its tags or its interactions, whichever code or process makes it: rendered pages are cached
per (post, version) and their ETag is derived from it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_indexes'
down_revision = '0008_import'
branch_labels = None
depends_on = None

_CHILDREN = ("interaction", "post_tag")  # tables whose rows belong to one post (post_id)

# SQLite: 'now' with milliseconds, in the text format SQLAlchemy reads back (6 fraction digits)
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def _sqlite_bump(where: str) -> str:
    return f"UPDATE post SET version = version + 1, changed_at = {_SQLITE_NOW} WHERE {where};"


def _sqlite_triggers() -> list[str]:
    out = []
    for table in _CHILDREN:
        out += [
            f"CREATE TRIGGER trg_{table}_version_ins AFTER INSERT ON {table} BEGIN "
            + _sqlite_bump("id = NEW.post_id") + " END",
            f"CREATE TRIGGER trg_{table}_version_upd AFTER UPDATE ON {table} BEGIN "
            + _sqlite_bump("id IN (OLD.post_id, NEW.post_id)") + " END",
            f"CREATE TRIGGER trg_{table}_version_del AFTER DELETE ON {table} BEGIN "
            + _sqlite_bump("id = OLD.post_id") + " END",
        ]
    # any update of the post itself that does not already bump the version (the bumps above do)
    out.append("CREATE TRIGGER trg_post_version_upd AFTER UPDATE ON post WHEN NEW.version = OLD.version BEGIN "
               + _sqlite_bump("id = NEW.id") + " END")
    return out


_PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION fedblog_bump_post_version() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE post SET version = version + 1, changed_at = now() WHERE id = OLD.post_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.post_id IS DISTINCT FROM OLD.post_id) THEN
        UPDATE post SET version = version + 1, changed_at = now() WHERE id = NEW.post_id;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION fedblog_post_touched() RETURNS trigger AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.changed_at := now();
    RETURN NEW;
END $$ LANGUAGE plpgsql""",
]


def _pg_triggers() -> list[str]:
    out = list(_PG_FUNCTIONS)
    for table in _CHILDREN:
        out.append(f"CREATE TRIGGER trg_{table}_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION fedblog_bump_post_version()")
    out.append("CREATE TRIGGER trg_post_version BEFORE UPDATE ON post FOR EACH ROW "
               "WHEN (NEW.version = OLD.version) EXECUTE FUNCTION fedblog_post_touched()")
    return out


def upgrade() -> None:
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('interaction', schema=None) as batch_op:
        batch_op.create_index('ix_interaction_thread', ['post_id', 'status', 'published_at', 'id'], unique=False)
        batch_op.create_index(
            'ix_interaction_post_kind', ['post_id', 'status', 'kind', 'via', 'published_at', 'id'], unique=False)
        batch_op.create_index(
            'ix_interaction_parent_kind', ['parent_id', 'status', 'kind', 'via', 'published_at', 'id'], unique=False)
        batch_op.drop_index('ix_interaction_post_id')  # a prefix of ix_interaction_thread
    dialect = op.get_bind().dialect.name
    for statement in _sqlite_triggers() if dialect == "sqlite" else _pg_triggers():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _CHILDREN:
            for suffix in ("ins", "upd", "del"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_version_{suffix}")
        op.execute("DROP TRIGGER IF EXISTS trg_post_version_upd")
    else:
        for table in _CHILDREN:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_version ON {table}")
        op.execute("DROP TRIGGER IF EXISTS trg_post_version ON post")
        op.execute("DROP FUNCTION IF EXISTS fedblog_bump_post_version()")
        op.execute("DROP FUNCTION IF EXISTS fedblog_post_touched()")
    with op.batch_alter_table('interaction', schema=None) as batch_op:
        batch_op.create_index('ix_interaction_post_id', ['post_id'], unique=False)
        batch_op.drop_index('ix_interaction_parent_kind')
        batch_op.drop_index('ix_interaction_post_kind')
        batch_op.drop_index('ix_interaction_thread')
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.drop_column('changed_at')
        batch_op.drop_column('version')
