"""The stack-file models: bad input in a stack file, the config reference and the project file."""
