"""Task modules of the core tests that worker processes import by name (keep them lean)."""
