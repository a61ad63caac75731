"""The ECS service scheduler: a pure plan per service (`plan`) and the loop that applies it
(`loop`)."""
