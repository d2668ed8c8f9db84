"""Scoring trained models, Grad-CAM, their figures, and REPORT.md."""
