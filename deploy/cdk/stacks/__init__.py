"""The vehicle-anomaly CDK stacks (see ``deploy/README.md``)."""
