"""Human rating of stored generations (paper Tables 1 and 3): `mgbench rate ...`.

- campaign.py: campaigns (items, opaque ids, assignment, seeded orders, gold items, secret links)
- ratings.py: a rater's items and the only writes to the `ratings` table
- app.py: the rating web app (Flask under waitress); templates/ and static/ hold its pages
- offline.py: self-contained HTML forms for file:// use, and the import of their saved answers
- agreement.py / results.py: majority verdicts, k/n with Wilson intervals, Fleiss' kappa, Krippendorff's
  alpha, judge-vs-people agreement; `results.human_metric` fills request_met_human / failure_rate_human
- cli.py: the `rate` subcommands; testing.py: store and server helpers for tests
"""
