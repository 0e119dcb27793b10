"""The `worker:` process (Procfile): `python manage.py chat_worker`.

It emails people what they missed: someone @mentioned, or written to in a direct
conversation, who has not read it CHAT_MENTION_EMAIL_DELAY seconds (10 minutes by
default) after it was posted gets one email listing it (chat/notifications.py).

Why a process of its own, polling the database, and not the channel layer or a web
process:
- A delay of minutes cannot ride the channel layer. channels_redis drops a message that
  nobody received within its `expiry` (60 s here, project/settings.py) and keeps nothing
  across a Redis restart; the layer is made for pages that are open now, not for
  something due later.
- So the database is the queue. A post writes its `MissedEmail` rows in its own
  transaction, so a saved message always has them, and a rolled-back one never does.
  A row is marked `sent_at` when handled (emailed or skipped), in the transaction that
  sends the email: a worker that dies or is restarted loses nothing and repeats nothing.
- A web process must never wait on a mail server, and N web processes would each send.
  Any number of workers may run: each person is taken by one of them at a time
  (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL).
- Polling every CHAT_WORKER_POLL_SECONDS (5 s) is one indexed query when nothing is due;
  an email ten minutes late by design does not need a push.

SIGTERM (a platform's restart) or SIGINT (Ctrl-C) lets the current batch finish, then the
command exits with status 0.
"""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from chat.notifications import missed_emails_send

logger = logging.getLogger("chat.worker")


class Command(BaseCommand):
    help = "Send the emails about missed mentions and direct messages, as they fall due."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Send what is due now, then exit (cron, tests)."
        )

    def handle(self, *args, once=False, **options):
        if once:
            missed_emails_send()
            return
        stop = threading.Event()

        def request_stop(signum, frame):
            # Only a flag: the batch in hand finishes (its transaction commits) first.
            logger.info("%s: stopping after the current batch", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        poll = settings.CHAT_WORKER_POLL_SECONDS
        logger.info(
            "chat worker started: emails due after %ss, checked every %ss, through %s",
            settings.CHAT_MENTION_EMAIL_DELAY,
            poll,
            "SMTP " + settings.EMAIL_HOST if settings.EMAIL_HOST else "the console",
        )
        if not settings.EMAIL_HOST and not settings.DEBUG:
            logger.warning("EMAIL_HOST is not set: emails are printed here, not sent")
        while not stop.is_set():
            # Something sent: batches are bounded, so more may be due; look again at once.
            if not self._send():
                stop.wait(poll)
        logger.info("chat worker stopped")

    def _send(self):
        # As around a request: drop a connection the database closed, or one too old.
        close_old_connections()
        try:
            return missed_emails_send()
        except Exception:
            # A mail server or database that is down: nothing was marked sent, so the
            # next round tries again. The worker stays up.
            logger.exception("sending missed emails failed; retrying in the next round")
            return 0
        finally:
            close_old_connections()
