"""The operator's dashboard: figures, charts, health of the periodic jobs, and actions."""
