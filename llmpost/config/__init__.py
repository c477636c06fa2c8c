"""Configuration: one pydantic model per stage and the one function that layers them."""
