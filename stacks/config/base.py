"""The base of every stack-file model: camelCase keys, unknown keys refused, immutable."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class StackModel(BaseModel):
    """Keys are camelCase in the stack file; a key the model does not know is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class ConfigProblem(ValueError):
    """A refusal that names its key (relative to the model that raises it, e.g. ``cache.size``),
    so the loader can print ``Pulumi.<stack>.yaml: llmstack:models[0] (name: x).cache.size: ...``."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
