"""Thin ROS 2 layer: node, message conversions, markers, diagnostics."""
