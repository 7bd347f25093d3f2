"""Accuracy metrics of two-hand 3D reconstruction in the conventions of published InterHand2.6M tables."""
