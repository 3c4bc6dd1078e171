"""The demo estate: a small company's systems, stood up locally for the connectors to reach."""
