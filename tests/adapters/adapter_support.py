"""Shared constants of the adapter tests (a module, since tests/ is not a package)."""

IBAN_OK = "DE89370400440532013000"
IBAN_EVIL = "GB33BUKB20201555555555"
PAYMENT_SCOPE = [{"tool": "payments.transfer",
                  "args": {"iban": {"in": [IBAN_OK]}, "amount": {"le": 5000}}},
                 {"tool": "inbox.read"}]
TRANSFER_SCHEMA = {"type": "object",
                   "properties": {"iban": {"type": "string"}, "amount": {"type": "number"}},
                   "required": ["iban", "amount"]}
