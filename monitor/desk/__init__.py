"""The claim desk: the record of each tracked claim, built from the matches it was linked to.

:mod:`monitor.desk.record` is the pure core (claim and matches in, record out);
:mod:`monitor.desk.source` reads a claim's matches from the deployment's match log.
"""
