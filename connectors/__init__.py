"""The connector framework and the connectors, one per system that holds personal data."""
