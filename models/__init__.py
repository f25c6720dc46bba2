"""The model contract both sides share: what a model directory holds and how photos go in and labels come out.

card (card.json), taxonomy (classes and colours, taxonomies/*.json), images (decoding photos and label maps),
preprocessing and upsample_argmax (input tensors, logits to labels). Light: numpy, Pillow and cv2, no torch.
"""
