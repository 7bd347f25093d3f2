"""hand_recon_ros: real-time two-hand 3D reconstruction; a ROS-free core plus a thin ROS 2 layer."""

__version__ = "0.1.0"
