"""The routed-execution pipeline: privacy -> caller policy -> router -> local run -> checks -> escalation ->
fallback, one object (`Pipeline`) with one typed result (`RoutedOutcome`), over a registry of named models."""

from openfirst.pipeline.hooks import Hooks
from openfirst.pipeline.models import ModelEntry, ModelRegistry
from openfirst.pipeline.outcome import RoutedOutcome, StageRecord
from openfirst.pipeline.pipeline import Pipeline, RoutingPolicy
from openfirst.pipeline.route import DECIDERS, CallerPolicy, DecidedBy, Item, OperatingPoint, Route

__all__ = ["Pipeline", "RoutingPolicy", "RoutedOutcome", "StageRecord", "Route", "DecidedBy", "DECIDERS", "Item",
           "OperatingPoint", "CallerPolicy", "Hooks", "ModelEntry", "ModelRegistry"]
