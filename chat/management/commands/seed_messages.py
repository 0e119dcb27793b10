"""Fill a room with a long, realistic history, fast: `seed_messages --room NAME --count N`.

For benchmarks and for trying the history pages by hand. Each batch is one transaction
that locks the room, numbers its messages right after the room's `last_seq`, writes them
and moves `last_seq` / `last_message_at` on, so the room is consistent after every batch
and people may keep posting while it runs (their messages take the next numbers).

Rows are written with PostgreSQL's COPY or SQLite's executemany (`--method fast`, the
default), or with the ORM's `bulk_create` (`--method orm`, any database; slower).
"""

import random
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from chat.actions.rooms import room_get_or_create
from chat.models import Message, Room, RoomEvent

AUTHOR_PREFIX = "seed-author-"

VOCABULARY = (
    "the a an and or but so if then because when while after before about again all also "
    "always any anyone anything around back bit both busy can cannot could day days did do "
    "does done down each early else enough even ever every everyone fine first for from get "
    "going good got great had has have hear help here how idea into it its just keep kind "
    "know last later let like little long look lot made make maybe me more morning most much "
    "must my need never new next nice night no not now of off ok okay on once one only other "
    "our out over people place plan pretty probably quick quite really right same see seems "
    "should since some something soon still such sure take than thanks that there these they "
    "thing think this those though through time today together tomorrow too try two up us "
    "very wait want was way we week well were what where which who why will with work would "
    "yeah yes yet you your release deploy build test tests branch review merge ticket bug fix "
    "meeting call lunch coffee weekend train office remote laptop screen server database "
    "redis queue socket page room message chat update version issue change draft doc docs "
    "slides customer team design plot numbers latency benchmark cache index query"
)
WORDS = VOCABULARY.split()
OPENERS = (
    "hey",
    "hi all",
    "morning",
    "ok so",
    "quick question:",
    "fyi",
    "btw",
    "hmm",
    "lol",
    "update:",
    "thanks!",
    "good point",
    "+1",
    "sounds good",
    "on it",
)
ENDINGS = (".", ".", ".", "", "", "?", "!", " :)", " 👍", "...", " 🎉", "?!")
LINKS = (
    "https://example.com/docs/history",
    "https://example.org/issues/42",
    "http://example.net/a/b?c=d",
    "https://example.com/plots/latency.png",
)


class Command(BaseCommand):
    help = "Create (or reuse) a room and add N messages to its history quickly."

    def add_arguments(self, parser):
        parser.add_argument("--room", required=True, help="room name (created if new)")
        parser.add_argument("--count", type=int, required=True, help="messages to add")
        parser.add_argument("--authors", type=int, default=20, help="distinct authors (20)")
        parser.add_argument("--batch-size", type=int, default=10_000, help="rows per transaction")
        parser.add_argument(
            "--days", type=float, default=365.0, help="spread created_at over this many days"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable text)")
        parser.add_argument(
            "--method",
            choices=["fast", "orm"],
            default="fast",
            help="fast: COPY (PostgreSQL) / executemany (SQLite); orm: bulk_create",
        )

    def handle(self, *args, **options):
        count, batch_size = options["count"], options["batch_size"]
        if count < 0 or batch_size < 1 or options["authors"] < 1 or options["days"] < 0:
            raise CommandError("--count >= 0, --batch-size >= 1, --authors >= 1, --days >= 0")
        try:
            room, created = room_get_or_create(name=options["room"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        rng = random.Random(options["seed"])
        author_ids = _authors(options["authors"])
        write = _write_fast if options["method"] == "fast" else _write_orm

        started = time.monotonic()
        # created_at climbs with seq: from the room's newest message (or `days` ago) to now.
        end = timezone.now()
        start = room.last_message_at or end - timedelta(days=options["days"])
        start = min(start, end)
        step = (end - start) / max(count, 1)
        if created:  # a new room is as old as its history
            Room.objects.filter(pk=room.pk).update(created_at=start)
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            with transaction.atomic():
                locked = Room.objects.select_for_update().get(pk=room.pk)
                first_seq = locked.last_seq + 1
                times = [start + step * (done + i + 1) for i in range(size)]
                rows = [
                    (room.pk, rng.choice(author_ids), first_seq + i, _text(rng), times[i])
                    for i in range(size)
                ]
                write(rows)
                _record_events(room.pk, first_seq)
                newest = max(times[-1], locked.last_message_at or times[-1])
                Room.objects.filter(pk=room.pk).update(
                    last_seq=first_seq + size - 1, last_message_at=newest
                )
            done += size
            if options["verbosity"] >= 2:
                self.stdout.write(f"  {done:,}/{count:,} after {time.monotonic() - started:.1f} s")
        if connection.vendor == "postgresql" and count:
            with connection.cursor() as cursor:  # fresh planner statistics after a bulk load
                cursor.execute(f"ANALYZE {Message._meta.db_table}")
        seconds = time.monotonic() - started
        room.refresh_from_db()
        rate = count / seconds if seconds else 0
        self.stdout.write(
            f"room {room.slug!r} (id {room.pk}): added {count:,} messages in {seconds:.1f} s "
            f"({rate:,.0f}/s, {connection.vendor}, {options['method']}); last_seq {room.last_seq:,}"
        )


def _authors(number):
    """The ids of `number` seed authors (created once, reused; they cannot log in)."""
    User = get_user_model()
    names = [f"{AUTHOR_PREFIX}{i:02d}" for i in range(1, number + 1)]
    unusable = make_password(None)
    User.objects.bulk_create(
        [User(username=name, password=unusable) for name in names], ignore_conflicts=True
    )
    return list(User.objects.filter(username__in=names).values_list("pk", flat=True))


def _text(rng):
    """One chat line: mostly short, sometimes long, a link or a second line now and then."""
    roll = rng.random()
    length = rng.randint(1, 8) if roll < 0.6 else rng.randint(6, 30) if roll < 0.95 else 90
    words = rng.choices(WORDS, k=length)
    text = " ".join(words)
    if rng.random() < 0.25:
        text = f"{rng.choice(OPENERS)} {text}"
    text = text[0].upper() + text[1:] + rng.choice(ENDINGS)
    extra = rng.random()
    if extra < 0.04:
        text += f" {rng.choice(LINKS)}"
    elif extra < 0.07:
        text += "\n" + " ".join(rng.choices(WORDS, k=rng.randint(2, 10)))
    return text


_COLUMNS = ("room", "author", "seq", "text", "created_at")


def _record_events(room_id, first_seq):
    """Each seeded message is its room's event of its number, as if posted in the chat."""
    event_table = connection.ops.quote_name(RoomEvent._meta.db_table)
    message_table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # Table names from the models' own metadata; values are parameters.
            f"INSERT INTO {event_table} (room_id, seq, kind, message_id, created_at) "  # noqa: S608
            f"SELECT room_id, seq, %s, id, created_at FROM {message_table} "
            "WHERE room_id = %s AND seq >= %s",
            ["message.posted", room_id, first_seq],
        )


def _write_fast(rows):
    table = connection.ops.quote_name(Message._meta.db_table)
    columns = [connection.ops.quote_name(Message._meta.get_field(name).column) for name in _COLUMNS]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        adapt = connection.ops.adapt_datetimefield_value
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(
            # Names from the model's own metadata, quoted; values are parameters.
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
            [(room, author, seq, text, adapt(at)) for room, author, seq, text, at in rows],
        )


def _write_orm(rows):
    created_at = Message._meta.get_field("created_at")
    # bulk_create would stamp every row with now(); keep the spread-out times instead.
    created_at.auto_now_add = False
    try:
        Message.objects.bulk_create(
            [
                Message(room_id=room, author_id=author, seq=seq, text=text, created_at=at)
                for room, author, seq, text, at in rows
            ]
        )
    finally:
        created_at.auto_now_add = True
