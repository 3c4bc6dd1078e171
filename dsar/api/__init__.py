"""The JSON API: the subject's calls and the staff's calls."""
