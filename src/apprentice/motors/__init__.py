"""motors"""
