"""The emulator's own request schemas, written from the vendors' documents (never the client's models).

Each vendor module holds the models of its submit bodies. They are as strict as the documents (required
fields, JSON types, ranges, enums) and as lenient as the vendors: unknown keys are ignored, and ``null`` or an
empty object ``{}`` in an optional field counts as absent.
"""
