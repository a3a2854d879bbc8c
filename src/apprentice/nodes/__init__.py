"""The only rclpy code: thin nodes wiring parameters, topics and timers to the plain classes."""
