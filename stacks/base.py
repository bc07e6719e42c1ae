"""The base of every stack-file model: camelCase keys, unknown keys refused, immutable."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class StackModel(BaseModel):
    """Keys are camelCase in the stack file; a key the model does not know is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
