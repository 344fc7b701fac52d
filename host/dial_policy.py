"""When the poller dials a unit again: redials within one poll, and the back-off of ``--due``.

Numbers only, so that the command line can show them in its help without importing the poller
(``turbolog --help`` stays fast).  It must not import anything: :mod:`host.poll` applies them.
"""

REDIALS = 2
"""Calls made again, within one poll, to a unit that did not answer (busy, refused, silent)."""
REDIAL_S = 3.0
"""Seconds between such calls."""
RETRY_AFTER_S = 15 * 60.0
"""With ``--due``: a unit whose last try failed is dialled again this long after it, doubling with
each failure in a row (but never waiting longer than the due interval itself)."""
