"""Local comments as activities: web comments, pingbacks, Webmentions and imported comments become
activities of local guest and site actors, signed with FEP-8b32 integrity proofs.

Interface shared by every channel (the web form, the linkback verifier, imports, the admin queue):
the channel records the interaction with ``fedblog.blog.interactions`` and then, in the same
transaction, calls ``publish``. Moderation decides *when* it goes out: an item recorded as pending
is published when the admin approves it (``on_status_changed``).
"""

from __future__ import annotations

from sqlmodel import Session

from fedblog.services import Services
from fedblog.store.tables import Interaction


def publish(session: Session, services: Services, item: Interaction, *, quiet: bool = False) -> None:
    """Give the recorded ``item`` (a web comment, pingback, Webmention or import, already flushed:
    it has an id) its local actor and, when it is visible and ``item.federated``, its activity:
    ``Create(Note)``, ``Like`` or ``Announce`` with an integrity proof, served at its permalink and
    listed in the post's ``replies`` and ``context``. ``quiet``: never delivered (imports, the demo);
    otherwise it is delivered only to the fediverse authors of what it answers, never to followers.
    """


def on_status_changed(session: Session, services: Services, item: Interaction, before: str) -> None:
    """After the admin moved ``item`` from ``before`` to its current status: publish it when it
    became visible for the first time, send a ``Delete`` when a published item is removed."""
