"""Tailor's training side: datasets, augmentation, the U-Net, the training loop, export and quantization.

Light modules (metrics, config, dataset) import no torch at module level. It builds on the model contract
in `models` (card, taxonomy, images, preprocessing) and never imports `service`.
"""
