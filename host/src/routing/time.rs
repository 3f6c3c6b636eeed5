//! Time groups: weekly opening hours, dated exceptions and holidays in an
//! IANA time zone, evaluated at the moment of routing. Hours are wall-clock
//! times of the zone, so a DST change moves nothing an admin wrote.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

use crate::flow::model::TimeGroup;

/// Minutes since local midnight, `[start, end)`.
type Range = (u16, u16);

/// A parsed time group.
#[derive(Clone, Debug)]
pub struct Schedule {
    zone: TimeZone,
    /// Keyed by `Weekday::to_monday_zero_offset`.
    weekly: BTreeMap<i8, Vec<Range>>,
    exceptions: BTreeMap<Date, Vec<Range>>,
}

/// Why a part of a time group does not parse: the field (relative to the
/// group) and the reason.
pub type ScheduleError = (String, String);

impl Schedule {
    /// Parses a time group, collecting every error.
    pub fn parse(group: &TimeGroup) -> Result<Schedule, Vec<ScheduleError>> {
        let mut errors = Vec::new();
        let zone = match TimeZone::get(&group.time_zone) {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push((
                    "time_zone".into(),
                    format!(
                        "`{}` is not an IANA time zone (such as Europe/Istanbul)",
                        group.time_zone
                    ),
                ));
                None
            }
        };
        let mut weekly = BTreeMap::new();
        for (day, ranges) in &group.weekly {
            let Some(weekday) = parse_weekday(day) else {
                errors.push((
                    format!("weekly.{day}"),
                    "not a day of the week (monday ... sunday)".into(),
                ));
                continue;
            };
            weekly.insert(
                weekday.to_monday_zero_offset(),
                parse_ranges(ranges, &format!("weekly.{day}"), &mut errors),
            );
        }
        let mut exceptions = BTreeMap::new();
        for (i, exception) in group.exceptions.iter().enumerate() {
            let path = format!("exceptions[{i}]");
            let ranges = parse_ranges(&exception.hours, &format!("{path}.hours"), &mut errors);
            match exception.date.parse::<Date>() {
                Ok(date) => {
                    exceptions.insert(date, ranges);
                }
                Err(_) => errors.push((
                    format!("{path}.date"),
                    format!("`{}` is not a date (YYYY-MM-DD)", exception.date),
                )),
            }
        }
        for (i, holiday) in group.holidays.iter().enumerate() {
            match holiday.date.parse::<Date>() {
                Ok(date) => {
                    exceptions.insert(date, Vec::new());
                }
                Err(_) => errors.push((
                    format!("holidays[{i}].date"),
                    format!("`{}` is not a date (YYYY-MM-DD)", holiday.date),
                )),
            }
        }
        match zone {
            Some(zone) if errors.is_empty() => Ok(Schedule {
                zone,
                weekly,
                exceptions,
            }),
            _ => Err(errors),
        }
    }

    /// Whether the group is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let ranges = match self.exceptions.get(&local.date()) {
            Some(ranges) => ranges,
            None => match self.weekly.get(&local.weekday().to_monday_zero_offset()) {
                Some(ranges) => ranges,
                None => return false,
            },
        };
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        ranges
            .iter()
            .any(|&(start, end)| start <= minute && minute < end)
    }
}

fn parse_weekday(day: &str) -> Option<Weekday> {
    Some(match day.to_ascii_lowercase().as_str() {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn parse_ranges(ranges: &[String], path: &str, errors: &mut Vec<ScheduleError>) -> Vec<Range> {
    let mut parsed = Vec::new();
    for (i, text) in ranges.iter().enumerate() {
        match parse_range(text) {
            Some(range) => parsed.push(range),
            None => errors.push((
                format!("{path}[{i}]"),
                format!(
                    "`{text}` is not a range like 09:00-18:00 (start before end, end at most 24:00)"
                ),
            )),
        }
    }
    parsed
}

fn parse_range(text: &str) -> Option<Range> {
    let (start, end) = text.split_once('-')?;
    let (start, end) = (parse_clock(start.trim())?, parse_clock(end.trim())?);
    (start < end).then_some((start, end))
}

fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= 24 * 60).then_some(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::{DateException, Holiday};

    fn group() -> TimeGroup {
        TimeGroup {
            title: "office".into(),
            time_zone: "Europe/Berlin".into(),
            weekly: [
                ("monday", vec!["09:00-12:00", "13:00-18:00"]),
                ("saturday", vec!["10:00-14:00"]),
                ("sunday", vec!["00:00-24:00"]),
            ]
            .into_iter()
            .map(|(d, r)| (d.to_string(), r.into_iter().map(String::from).collect()))
            .collect(),
            exceptions: vec![DateException {
                date: "2026-12-31".into(),
                hours: vec!["09:00-13:00".into()],
                note: String::new(),
            }],
            holidays: vec![Holiday {
                date: "2026-12-28".into(),
                name: "closed for inventory".into(),
            }],
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn weekly_hours_in_the_groups_zone() {
        let s = Schedule::parse(&group()).unwrap();
        // Monday 2026-11-23, Berlin is UTC+1.
        assert!(!s.is_open(at("2026-11-23T07:59:00Z")));
        assert!(s.is_open(at("2026-11-23T08:00:00Z")));
        assert!(!s.is_open(at("2026-11-23T11:30:00Z")), "lunch break");
        assert!(s.is_open(at("2026-11-23T16:59:00Z")));
        assert!(!s.is_open(at("2026-11-23T17:00:00Z")));
        assert!(
            !s.is_open(at("2026-11-24T10:00:00Z")),
            "tuesday is not listed"
        );
        assert!(
            !s.is_open(at("2026-11-29T23:30:00Z")),
            "23:30Z sunday is 00:30 monday local"
        );
        assert!(
            s.is_open(at("2026-11-29T22:59:00Z")),
            "sunday is open all day"
        );
    }

    #[test]
    fn holidays_and_exceptions_override_the_week() {
        let s = Schedule::parse(&group()).unwrap();
        // 2026-12-28 is a Monday, but a holiday.
        assert!(!s.is_open(at("2026-12-28T10:00:00Z")));
        // 2026-12-31 is a Thursday (closed weekly) with an exception.
        assert!(s.is_open(at("2026-12-31T10:00:00Z")));
        assert!(!s.is_open(at("2026-12-31T12:30:00Z")));
    }

    #[test]
    fn hours_follow_the_wall_clock_across_a_dst_change() {
        // Europe/Berlin leaves DST on Sunday 2026-10-25 (03:00 CEST -> 02:00 CET).
        let mut g = group();
        g.weekly.insert("sunday".into(), vec!["09:00-10:00".into()]);
        g.weekly
            .insert("saturday".into(), vec!["09:00-10:00".into()]);
        let s = Schedule::parse(&g).unwrap();
        // Saturday, still CEST (UTC+2): 09:00 local is 07:00Z.
        assert!(s.is_open(at("2026-10-24T07:00:00Z")));
        assert!(!s.is_open(at("2026-10-24T08:00:00Z")));
        // Sunday, now CET (UTC+1): 09:00 local is 08:00Z.
        assert!(!s.is_open(at("2026-10-25T07:30:00Z")));
        assert!(s.is_open(at("2026-10-25T08:00:00Z")));
        assert!(s.is_open(at("2026-10-25T08:59:00Z")));
    }

    #[test]
    fn every_error_is_reported_with_its_field() {
        let mut g = group();
        g.time_zone = "Mars/Olympus".into();
        g.weekly.insert("funday".into(), vec![]);
        g.weekly
            .insert("friday".into(), vec!["18:00-09:00".into(), "9-5".into()]);
        g.holidays.push(Holiday {
            date: "31/12/2026".into(),
            name: String::new(),
        });
        let errors = Schedule::parse(&g).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "time_zone",
                "weekly.friday[0]",
                "weekly.friday[1]",
                "weekly.funday",
                "holidays[1].date"
            ]
        );
    }
}
