"""Checks that feed the gate. Each writes one CheckResult to reports/<check>.json."""
