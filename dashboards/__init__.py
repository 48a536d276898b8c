"""Plotly figure builders and self-contained HTML page assembly."""
