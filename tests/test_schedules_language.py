"""The `schedules:` block: what loads, every rejection with file:line and hint, cron instants."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.plan import format_plan
from orchestrator.workflow.cron import CronError, next_fire, parse_cron
from orchestrator.workflow.definitions import ScheduleSpec
from orchestrator.workflow.loader import check_text, parse_workflow

BERLIN = ZoneInfo("Europe/Berlin")

HEAD = """\
name: nightly
params:
  service: {type: string, required: true}
  replicas: {type: int, default: 2}
steps:
  - id: a
    shell: ["true"]
schedules:
"""


def _text(schedules: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(schedules), "  ")


def _problems(schedules: str) -> list[str]:
    workflow, problems = check_text(_text(schedules), "flows/nightly.yml")
    assert workflow is None
    return [str(p) for p in problems]


def test_schedules_load_into_specs_with_stable_ids() -> None:
    workflow = parse_workflow(
        _text("""\
        - cron: "0 3 * * 1-5"
          timezone: Europe/Berlin
          params: {service: api}
        - id: hourly
          cron: "@hourly"
          params: {service: db, replicas: 3}
          channel: C0OPS
          overlap: cancel_previous
          catchup: 1h
          pause_after_failures: 3
        """)
    )
    first, second = workflow.schedules
    assert first == ScheduleSpec(
        id="nightly/1", cron="0 3 * * 1-5", timezone="Europe/Berlin",
        params=(("service", "api"),), line=9,
    )  # fmt: skip
    assert second.id == "nightly/hourly" and second.cron == "@hourly"
    assert (second.timezone, second.channel, second.overlap) == ("UTC", "C0OPS", "cancel_previous")
    assert (second.catchup_s, second.pause_after_failures) == (3600.0, 3)
    assert dict(second.params) == {"service": "db", "replicas": 3}


def test_a_workflow_without_schedules_has_none() -> None:
    assert parse_workflow(HEAD.replace("schedules:\n", "")).schedules == ()
    assert parse_workflow(HEAD).schedules == ()


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ('- cron: "61 3 * * *"\n  params: {service: a}',
         "nightly.yml:9: cron minute field `61` is invalid: the last value (61) is higher than "
         "the maximum value (59) (hint: minute takes 0-59"),
        ('- cron: "0 3 * *"\n  params: {service: a}',
         "nightly.yml:9: cron `0 3 * *` has 4 fields, not 5 (hint: write minute hour"),
        ('- cron: "0 0 * * 1-9"\n  params: {service: a}',
         "nightly.yml:9: cron day of week field `1-9` is invalid at `1-9` (hint: day of week "
         "takes 0-7 or sun-sat (0 and 7 are Sunday)"),
        ('- cron: "@dayly"\n  params: {service: a}',
         "nightly.yml:9: unknown cron alias `@dayly` (hint: did you mean @daily?)"),
        ('- cron: "0 0 30 2 *"\n  params: {service: a}',
         "nightly.yml:9: cron `0 0 30 2 *` never fires"),
        ('- cron: "@daily"\n  timezone: Europe/Berln\n  params: {service: a}',
         "nightly.yml:10: unknown timezone `Europe/Berln` (hint: did you mean Europe/Berlin?)"),
        ('- cron: "@daily"\n  timezone: berlin\n  params: {service: a}',
         "nightly.yml:10: unknown timezone `berlin` (hint: did you mean Europe/Berlin?)"),
        ('- cron: "@daily"\n  params: {servce: a}',
         "nightly.yml:10: schedule param `servce` is not a parameter of this workflow (hint: "
         "did you mean service?)"),
        ('- cron: "@daily"',
         "nightly.yml:9: schedule param `service` is required (hint: add params: {service: ...}"),
        ('- cron: "@daily"\n  params: {service: a, replicas: many}',
         "nightly.yml:10: schedule param `replicas` 'many' is not a whole number"),
        ('- cron: "@daily"\n  params: {service: a}\n  overlap: skipp',
         "nightly.yml:11: overlap `skipp` is not allowed (hint: did you mean skip?"),
        ('- cron: "@daily"\n  params: {service: a}\n  catchup: forever',
         "nightly.yml:11: catchup must be a duration"),
        ('- cron: "@daily"\n  params: {service: a}\n  pause_after_failures: 0',
         "nightly.yml:11: pause_after_failures must be a whole number from 1 to 1000"),
        ('- cron: "@daily"\n  params: {service: a}\n  timzone: UTC',
         "nightly.yml:11: unknown key `timzone` in schedule 1 (hint: did you mean `timezone`?)"),
        ("- timezone: UTC\n  params: {service: a}",
         'nightly.yml:9: schedule 1 has no cron (hint: add cron: "0 3 * * 1-5")'),
        ('- cron: "@daily"\n  params: {service: a}\n  channel: "my channel"',
         "nightly.yml:11: channel `my channel` is not a channel id or name"),
        ('- cron: "@daily"\n  id: 1st\n  params: {service: a}',
         "nightly.yml:10: invalid schedule id `1st` (hint: start with a letter"),
        ('- {id: x, cron: "@daily", params: {service: a}}\n'
         '- {id: x, cron: "@hourly", params: {service: a}}',
         "nightly.yml:10: schedule id `x` is used twice (hint: schedule ids must differ; the "
         "other is on line 9)"),
        ("{cron: x}", "nightly.yml:9: schedules must be a list of mappings"),
    ],
)  # fmt: skip
def test_every_rejection_names_file_line_and_a_hint(schedule: str, expected: str) -> None:
    problems = _problems(schedule)
    assert any(p.startswith("flows/" + expected) for p in problems), problems


def test_params_declared_after_schedules_are_known() -> None:
    text = "name: late\nschedules:\n  - {cron: '@daily', params: {n: '7'}}\n"
    text += "params:\n  n: {type: int}\nsteps:\n  - {id: a, shell: ['true']}\n"
    assert parse_workflow(text).schedules[0].params == (("n", "7"),)


# ---------------------------------------------------------------- crontab meaning


def _fires(cron: str, start: datetime, count: int, zone: str = "Europe/Berlin") -> list[str]:
    out, moment = [], start
    for _ in range(count):
        moment = next_fire(cron, zone, moment)
        assert moment is not None
        out.append(f"{moment:%m-%d %H:%M}Z={moment.astimezone(ZoneInfo(zone)):%H:%M%z}")
    return out


def test_weekdays_count_from_sunday_as_in_crontab() -> None:
    # APScheduler 3 counts from Monday: its "1-5" would be Tuesday to Saturday.
    start = datetime(2030, 1, 5, tzinfo=UTC)  # a Saturday
    days = [f"{next_fire('0 3 * * 1-5', 'UTC', start + timedelta(days=d)):%a}" for d in range(7)]
    assert days == ["Mon", "Mon", "Mon", "Tue", "Wed", "Thu", "Fri"]
    sundays = {f"{next_fire(c, 'UTC', start):%a %d}" for c in ("0 0 * * 0", "0 0 * * 7", "@weekly")}
    assert sundays == {"Sun 06"}


def test_day_of_month_and_weekday_both_given_mean_either() -> None:
    fires = _fires("0 12 1 * mon", datetime(2030, 1, 20, tzinfo=UTC), 3, "UTC")
    assert fires == ["01-21 12:00Z=12:00+0000", "01-28 12:00Z=12:00+0000",
                     "02-01 12:00Z=12:00+0000"]  # fmt: skip


def test_a_daily_time_fires_once_on_both_dst_changes() -> None:
    spring = _fires("30 2 * * *", datetime(2030, 3, 29, 12, tzinfo=UTC), 3)
    # 02:30 does not exist on 31 March: it fires 03:30 summer time, once.
    assert spring == ["03-30 01:30Z=02:30+0100", "03-31 01:30Z=03:30+0200",
                      "04-01 00:30Z=02:30+0200"]  # fmt: skip
    autumn = _fires("30 2 * * *", datetime(2030, 10, 26, 12, tzinfo=UTC), 3)
    # 02:30 happens twice on 27 October: only the first fires.
    assert autumn == ["10-27 00:30Z=02:30+0200", "10-28 01:30Z=02:30+0100",
                      "10-29 01:30Z=02:30+0100"]  # fmt: skip


def test_an_hourly_cron_fires_every_real_hour_across_dst() -> None:
    autumn = _fires("0 * * * *", datetime(2030, 10, 26, 22, 30, tzinfo=UTC), 4)
    assert autumn == ["10-26 23:00Z=01:00+0200", "10-27 00:00Z=02:00+0200",
                      "10-27 01:00Z=02:00+0100", "10-27 02:00Z=03:00+0100"]  # fmt: skip
    spring = _fires("@hourly", datetime(2030, 3, 30, 23, 30, tzinfo=UTC), 3)
    assert spring == ["03-31 00:00Z=01:00+0100", "03-31 01:00Z=03:00+0200",
                      "03-31 02:00Z=04:00+0200"]  # fmt: skip
    # Asked from inside the first pass through the repeated hour, the second pass is next.
    assert next_fire("0 * * * *", "Europe/Berlin", datetime(2030, 10, 27, 0, 10, tzinfo=UTC)) == (
        datetime(2030, 10, 27, 1, 0, tzinfo=UTC)
    )


def test_fires_are_strictly_increasing_through_a_whole_dst_year() -> None:
    for cron in ("*/20 * * * *", "15 1-3 * * *", "0 2 * * 0"):
        moment, seen = datetime(2030, 1, 1, tzinfo=UTC), 0
        while moment < datetime(2031, 1, 1, tzinfo=UTC):
            following = next_fire(cron, "Europe/Berlin", moment)
            assert following is not None and following > moment
            moment, seen = following, seen + 1
        assert seen > 50


def test_parse_cron_rejects_what_crontab_rejects() -> None:
    with pytest.raises(CronError, match="seconds are not supported"):
        parse_cron("0 0 3 * * *")
    with pytest.raises(CronError, match="hour field `24`"):
        parse_cron("0 24 * * *")
    assert parse_cron(" @Daily ").triggers  # aliases are case-insensitive


def test_plan_shows_each_schedule_and_its_next_three_fires() -> None:
    workflow = parse_workflow(
        'name: nightly\nschedules:\n  - {id: three, cron: "0 3 * * *", timezone: Europe/Berlin}\n'
        'steps:\n  - id: work\n    shell: ["true"]\n'
    )
    text = format_plan(workflow, datetime(2030, 3, 29, 12, 0, tzinfo=UTC))
    assert "nightly/three: 0 3 * * * (Europe/Berlin)" in text
    # the spring change (31 March): 03:00 CET is 02:00Z, then 03:00 CEST is 01:00Z
    assert "next 2030-03-30 03:00 CET (02:00Z)" in text
    assert "next 2030-03-31 03:00 CEST (01:00Z)" in text
    assert "next 2030-04-01 03:00 CEST (01:00Z)" in text
