"""Review: what happens to drafts once annotators have them, from splitting a batch to delivering it.

Pure measures on label maps (measures, checks, flags, checklist, effort, agreement, split), the use-cases
on the store (worklists, item_qa, effort_records, annotator_agreement, stored_maps), and the two outputs:
delivery/ (the package) and report/ (the HTML batch report). No web framework here.
"""
