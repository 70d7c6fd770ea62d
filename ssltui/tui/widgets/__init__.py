"""Widgets shared by the screens: charts, feature-map thumbnails, the results table."""
