"""Drafting helpers that work on a photo's kept model output: one click or stroke fixes a region.

Pure numpy and OpenCV: no model call, no web framework; the service and the CLI wire them in.
"""
