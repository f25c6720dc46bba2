"""Tailor's training side: taxonomy, datasets, the U-Net, the training loop and model artifacts.

Light modules (taxonomy, metrics, card, images) import no torch at module level, because the CPU
server uses them without torch. Nothing here imports `service`.
"""
