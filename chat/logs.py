"""Log lines as JSON objects, one a line (CHAT_LOG_FORMAT=json, project/settings.py).

Log collectors (Loki, CloudWatch, a platform's drain) then index fields without parsing
text: `time`, `level`, `logger`, `message`, and whatever a call passed in `extra=`, e.g.
`room`, `seq` and `kind` of the "event published" line (chat/metrics.py).
"""

import json
import logging
from datetime import UTC, datetime

# What every LogRecord carries; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold (a model, a Path) still logs.
        return json.dumps(line, default=str, ensure_ascii=False)
