"""The ROS 2 node `dsrl_real_node` (node.py). The rclpy runtime it shares with the ROS adapters is robots/ros_runtime.py."""
