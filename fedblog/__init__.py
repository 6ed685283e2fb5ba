"""fedblog: a self-hosted blog server that is a first-class citizen of the fediverse.

Importing this package has no side effects: no configuration is read, no key loaded and no
database opened. Everything is built in ``fedblog.services.build_services``.
"""

__version__ = "0.1.0"
