"""The vehicle-anomaly CDK stacks (see ``the README's Deploy section``)."""
