"""What several pages render or check alike (no routes here): a page module imports these, never another page."""
