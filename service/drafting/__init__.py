"""Drafting: a photo (bytes or a path) in, a draft (labels and confidence at the photo's size) out.

engine.Engine.draft is the one seam every caller uses: it reads the header once, applies the size limits
and the pixel budget, decodes, and runs the model on the batcher's thread (predictor, backends); answer
turns drafts into what clients receive, left_right splits paired classes, model_swap changes the model, and
refine relabels a draft from clicks and strokes over the model's kept scores (scores).
"""
