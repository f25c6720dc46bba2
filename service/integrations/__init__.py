"""Annotation tools as clients: Label Studio (an ML backend served by the app) and CVAT (an sdk function).

labelstudio: label config parsing, prediction regions, annotations back to label maps, retrain requests;
labelstudio_client: per-project connections and authenticated fetches; cvat: an auto-annotation function.
"""
