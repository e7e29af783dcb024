"""Deliberately bad models for the gate's failing cases."""
