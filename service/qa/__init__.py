"""QA analysis for the annotation team: checks on corrected masks, left/right split of paired classes,
correction effort, inter-annotator agreement and worklists. Pure functions on numpy label maps:
no web framework, no database, no torch; the app wraps them.
"""
