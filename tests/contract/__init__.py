"""What other programs rely on: the package schema, the provider host and wire-shaped args, a consumer project,
packaging, the policy pack, the YAML example, the components reference, the workflows."""
