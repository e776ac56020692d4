"""Hooks: AWS clients built from Airflow connections through the amazon provider's AwsBaseHook.

Operators, triggers and the console stand on this package, as the provider's own
operators and triggers stand on its hooks.
"""
