"""Small programs run as separate OS processes by the DDS tests (real rclpy peers)."""
