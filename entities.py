"""Entities: the business objects that features describe.

Every entity has one string join key. Ids look like ``card_12345``, ``user_1001``,
``device_100123`` and ``session_1000042``.
"""

from feast import Entity, ValueType

OWNER = "ml-platform@example.com"

# A payment card. Fraud features are keyed by the card that pays.
card = Entity(
    name="card",
    join_keys=["card_id"],
    value_type=ValueType.STRING,
    description="A payment card, e.g. card_12345; the subject of fraud scoring.",
    owner=OWNER,
    tags={"domain": "payments", "pii": "false"},
)

# A customer account. Personalization features are keyed by the user.
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A customer account, e.g. user_1001; owns cards and devices and browses the shop.",
    owner=OWNER,
    tags={"domain": "customers", "pii": "false"},
)

# A device fingerprint. Shared devices link otherwise unrelated cards (fraud rings, card testing).
device = Entity(
    name="device",
    join_keys=["device_id"],
    value_type=ValueType.STRING,
    description="A device fingerprint, e.g. device_100123; the device a payment or a session came from.",
    owner=OWNER,
    tags={"domain": "payments", "pii": "false"},
)

# A browsing session, as assigned by the web and app clients.
session = Entity(
    name="session",
    join_keys=["session_id"],
    value_type=ValueType.STRING,
    description="A browsing session of one user on one device, e.g. session_1000042.",
    owner=OWNER,
    tags={"domain": "clickstream", "pii": "false"},
)
