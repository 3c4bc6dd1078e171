"""The demo estate: a small company's systems, stood up locally for the connectors to reach.

Its data keeps the retention its categories promise (dsar/taxonomy.yaml, `retention_days`): the
demo subjects' times in categories with a fixed age are written as so many days before the load,
and generated subjects' times all are. Two things are kept past their promise on purpose, so that
an export of alice@example.com shows a retention finding (docs/legal-duties.md): her 2014 invoice,
which its retention rule kept until March 2024, and a clip from a store's security camera stored on
2 October 2026, past the 30 days such footage is kept.
"""
