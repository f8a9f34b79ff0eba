"""Test doubles of the hardware stack, each held to the real API's signatures (tests only; not in the wheel).

    rclpy_fake.py   rclpy, its message and action packages, and simulated peers (franka_ros2, image topics),
                    checked against ros_api.py (the real rclpy / message / franka_ros2 / rcl facts)
    interbotix.py   the Interbotix ROS 2 Python API driving the simulator, checked against interbotix_api.py
    launch_fake.py  ROS 2 launch / launch_ros / ament_index, checked against launch_api.py
    realsense.py    pyrealsense2 with simulated devices
    api_check.py    RealAPI: the one spec_for / check_call every *_api.py uses
    modules.py      swapped: the one sys.modules swap every fake's install() uses

Use one as `from fakes import rclpy_fake` and `with rclpy_fake.install() as ros: ...`.
"""
