"""Inventory of what an org owns, gathered from the service or from the Automation API."""
