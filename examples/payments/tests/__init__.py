"""The payments example's own tests: how an app that uses taskkit tests its jobs."""
