"""ROS-free pipeline stages: localisation, landmarks, metric 3D, mesh, tracking."""
