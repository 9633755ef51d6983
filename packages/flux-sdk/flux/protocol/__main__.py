"""``python -m flux.protocol``: print the protocol's JSON schema (regenerates the snapshot)."""

import json
import sys

from flux.protocol import json_schema

json.dump(json_schema(), sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
