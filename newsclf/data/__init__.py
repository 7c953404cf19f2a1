"""Turning a newsroom archive into a labelled, leak-free dataset: pages → articles → labels → splits."""
