"""The benchmark behind ``make bench``: our export and restore against the alternatives."""
