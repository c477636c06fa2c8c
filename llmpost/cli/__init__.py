"""The typer app. Registration and argument parsing only: no torch import at module level."""
