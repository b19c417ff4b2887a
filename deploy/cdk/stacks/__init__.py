"""The vehicle-anomaly CDK stacks (see ``docs/deploy.md``)."""
