"""A small payments app whose background jobs run through taskkit."""
