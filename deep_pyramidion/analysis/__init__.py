"""Analysis of trained models (torch only): what the poolers keep (highlight.py)."""
