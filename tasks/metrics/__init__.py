"""Metric implementations that reproduce the reference scripts the paper's numbers come from.

Each module documents which reference script (repository, file, commit) it matches and where it
deliberately differs. Import the modules directly (`tasks.metrics.vqa`, `tasks.metrics.caption`, ...).
"""
