"""The unit of work: session, pending work, flush, merge, notifications, queries, identity.

Nothing is imported here, so lower layers can import :mod:`couchmapper.orm.state` without
loading the session.
"""
