"""Fault-injecting proxies for DynamoDB (dynalite) and S3 (moto): a test instrument.

See README.md in this folder.
"""

from .base import FaultProxy
from .dynamodb_proxy import DynamoDBFaultProxy, DynamoFaults
from .s3_proxy import S3FaultProxy, S3Faults
from .strict import FrontDoor, MovableClock, Principal

__all__ = ["DynamoDBFaultProxy", "DynamoFaults", "FaultProxy", "FrontDoor", "MovableClock", "Principal",
           "S3FaultProxy", "S3Faults"]
