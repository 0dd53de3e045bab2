"""Job modules for the loader and validate tests: good ones and deliberately broken ones."""
